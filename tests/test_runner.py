"""The project's runner: what a command runs through it is what the notebooks last exported and settings.ini says
now; two commands at once are both served; it listens only on its socket, keeps no secret in its log, and starts
again when the installed packages change."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from conftest import PG_PASSWORD, fresh_clone, wait_for, write_project

from my_package.dev.runner import await_runner, launch_runner, reachable, runner_files, runner_pid, stop_runner
from my_package.dev.server import free_port

BIN = Path(sys.executable).parent


def typed(*args: str, cwd: Path, extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    "`python -m my_package ARGS` typed in `cwd`: a user's environment, no Prefect or kit variables but `extra`."
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MY_PACKAGE_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "my_package", *args],
        cwd=cwd,
        env={**env, "COLUMNS": "120", **(extra or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def served(project: Path) -> list[str]:
    "The commands the project's runner ran, from its log, in order."
    log = runner_files(project)["log"]
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split()[2].rstrip(":") for line in lines if ": started in process" in line]


def test_an_exported_edit_and_a_settings_change_run_through_a_runner_started_before_them(
    tmp_path, demo_source, seed_prefect
):
    project = fresh_clone(tmp_path / "clone")
    (project / "data").mkdir()
    shutil.copy(demo_source, project / "data" / "source.db")
    seed_prefect(project / ".prefect")
    port = {"PREFECT_PORT": str(free_port())}
    started = typed("server", "start", cwd=project, extra=port)
    assert started.returncode == 0, started.stderr
    assert "Commands run through the project's runner" in started.stderr, started.stderr
    runner = runner_pid(project)
    try:
        before = typed("run", "airlines", "--no-reports", cwd=project)
        assert before.returncode == 0, before.stdout + before.stderr
        assert "Run summary" in before.stdout and "as edited" not in before.stdout

        # the data scientist changes an exported function in its notebook and exports, nothing else
        page = project / "nbs" / "59_terminal.ipynb"
        notebook = nbformat.read(page, as_version=4)
        [cell] = [c for c in notebook.cells if 'Table(title="Run summary")' in c.source]
        cell.source = cell.source.replace('Table(title="Run summary")', 'Table(title="Run summary, as edited")')
        nbformat.write(notebook, page)
        exported = subprocess.run([str(BIN / "nbdev_export")], cwd=project, capture_output=True, text=True)
        assert exported.returncode == 0, exported.stderr
        assert "Run summary, as edited" in (project / "my_package" / "terminal.py").read_text()
        after = typed("run", "airlines", "--no-reports", cwd=project)
        assert after.returncode == 0, after.stdout + after.stderr
        assert "Run summary, as edited" in after.stdout, after.stdout

        # and registers a table in settings.ini: the next command knows it
        settings = project / "settings.ini"
        settings.write_text(settings.read_text() + "\n[table:fleet]\nsource_table = planes\nprimary_key = tailnum\n")
        fleet = typed("run", "fleet", "--no-reports", cwd=project)
        assert fleet.returncode == 0, fleet.stdout + fleet.stderr
        assert "fleet" in fleet.stdout and "3,322" in fleet.stdout, fleet.stdout

        assert runner_pid(project) == runner, "the runner was restarted"
        # each run was served, and so was the index writer each run starts with the server up ("report")
        commands = served(project)
        assert [c for c in commands if c == "run"] == ["run", "run", "run"], commands
        assert set(commands) <= {"run", "report"}, commands
    finally:
        typed("server", "stop", cwd=project)
    assert runner_pid(project) is None


def test_two_commands_at_once_are_both_served(tmp_path, demo_source, prefect_server):
    project = tmp_path / "project"
    write_project(project, ("airlines", "flights"), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    extra = {"PREFECT_API_URL": prefect_server["api"]}
    pid = await_runner(project, launch_runner(project), timeout=300)
    assert pid, runner_files(project)["log"].read_text()
    log = runner_files(project)["log"]
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MY_PACKAGE_", "PYTEST_"))}
        slow = subprocess.Popen(
            [sys.executable, "-m", "my_package", "run", "flights", "--no-reports"],
            cwd=project, env={**env, "COLUMNS": "120", **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert wait_for(lambda: "run: started in process" in log.read_text(), timeout=120), log.read_text()
            group = int(log.read_text().split("run: started in process ")[1].split()[0])
            os.killpg(group, signal.SIGSTOP)  # the first command is held mid-way: the second must not wait for it
            try:
                quick = typed("run", "airlines", "--no-reports", cwd=project, extra=extra)
                assert quick.returncode == 0, quick.stdout + quick.stderr
                assert slow.poll() is None, "the first command ended while it was stopped"
            finally:
                os.killpg(group, signal.SIGCONT)
            out, err = slow.communicate(timeout=600)
        finally:
            if slow.poll() is None:
                slow.kill()
    finally:
        stop_runner(project)
    assert slow.returncode == 0, out + err
    assert "flights" in out and "336,776" in out, out
    assert "airlines" in quick.stdout and "flights" not in quick.stdout
    assert served(project) == ["run", "run"]


def test_secrets_stay_out_of_the_runner_log_and_it_listens_on_its_socket_alone(
    tmp_path, demo_source, postgres, prefect_server
):
    import sqlalchemy as sa

    admin = sa.create_engine(
        f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:{postgres['port']}/postgres",
        isolation_level="AUTOCOMMIT",
    )
    database = f"runner_{os.getpid()}_{time.monotonic_ns()}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    project = tmp_path / "project"
    warehouse = f"postgresql+psycopg://postgres:${{KIT_PG_PASSWORD}}@127.0.0.1:{postgres['port']}/{database}"
    write_project(project, ("airlines",), f"sqlite:///{demo_source}", warehouse)
    (project / ".env").write_text(f"KIT_PG_PASSWORD={PG_PASSWORD}\n")  # the password lives in .env alone
    token = "tok-3141-never-logged"
    extra = {"PREFECT_API_URL": prefect_server["api"], "KIT_API_TOKEN": token}
    pid = await_runner(project, launch_runner(project), timeout=300)
    assert pid, runner_files(project)["log"].read_text()
    try:
        ran = typed("run", "airlines", "--no-reports", cwd=project, extra=extra)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        checked = typed("check", cwd=project, extra=extra)
        assert checked.returncode == 0, checked.stderr
        refused = typed("run", "airlines", "--profile", "nowhere", cwd=project, extra=extra)
        assert refused.returncode != 0 and "nowhere" in refused.stderr, refused.stderr
        assert served(project) == ["run", "check", "run"], served(project)
        for shown in (ran.stdout + ran.stderr, checked.stdout + checked.stderr, refused.stdout + refused.stderr):
            assert PG_PASSWORD not in shown and token not in shown

        sockets = set()  # every socket the runner holds: its own (Unix), none on TCP
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                sockets.add(target[len("socket:[") : -1])
        tcp = "".join(Path(f"/proc/{pid}/net/{name}").read_text() for name in ("tcp", "tcp6"))
        assert sockets and not any(f" {inode} " in tcp for inode in sockets), "the runner holds a TCP socket"
        assert runner_files(project)["socket"].stat().st_mode & 0o777 == 0o600
    finally:
        stop_runner(project)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()
    log = runner_files(project)["log"].read_text()
    assert "airlines" not in log and "nowhere" not in log, log  # no arguments,
    assert PG_PASSWORD not in log and token not in log, log  # no secret,
    assert "started in process" in log and "ended with 0" in log  # what it did


def test_a_change_to_the_installed_packages_starts_the_runner_again(tmp_path, demo_source, prefect_server):
    settings = write_project(tmp_path / "project", ("airlines",), f"sqlite:///{demo_source}", "sqlite:///w.db")
    packages = tmp_path / "site-packages"  # a folder of installed packages that the runner imports from
    packages.mkdir()
    address, log = tmp_path / "runner.sock", tmp_path / "runner.log"
    env = {**os.environ, "PYTHONPATH": str(packages)}
    with open(log, "ab") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "my_package.runner", "--socket", str(address)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    extra = {"MY_PACKAGE_RUNNER": str(address), "MY_PACKAGE_SETTINGS": str(settings)}
    extra["PREFECT_API_URL"] = prefect_server["api"]
    serving = lambda: log.read_text().count("serving at")  # noqa: E731
    try:
        assert wait_for(lambda: serving() == 1, timeout=300), log.read_text()
        assert typed("tables", cwd=tmp_path, extra=extra).returncode == 0
        assert log.read_text().count("tables: started") == 1

        (packages / "freshly_installed").mkdir()  # a package installed into it
        changed = typed("tables", cwd=tmp_path, extra=extra)
        assert changed.returncode == 0, changed.stderr  # run by itself meanwhile
        assert "not served: the installed packages changed" in log.read_text()
        assert wait_for(lambda: serving() == 2, timeout=300), log.read_text()
        again = typed("tables", cwd=tmp_path, extra=extra)
        assert again.returncode == 0, again.stderr
        assert log.read_text().count("tables: started") == 2, log.read_text()
        assert runner.poll() is None  # the same process, its imports made again
    finally:
        runner.terminate()
        runner.wait(60)


def test_importing_what_the_runner_holds_starts_no_thread_and_leaves_pyplot_to_kernels():
    # Prefect's engine deadlocks in a child forked from a process whose client, loop or threads have started; and
    # matplotlib.pyplot imported before a kernel's IPython runs shows nothing on plt.show()
    code = (
        "import sys\nfrom my_package.runner import preload, started_threads\nmissing = preload()\n"
        "print(started_threads(), 'matplotlib.pyplot' in sys.modules, 'prefect' in sys.modules, missing)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[] False True []", out.stdout


def test_a_report_renders_on_a_kernel_forked_from_the_runner_and_shows_its_figures(cli, runner, tmp_path, demo_source):
    settings = write_project(tmp_path, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    page = json.loads((Path(__file__).parents[1] / "nbs" / "tables" / "table_report.ipynb").read_text())
    shown = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"  # the inline backend's own display
    page["cells"].insert(3, nbformat.v4.new_code_cell(shown, id="pltshow1"))
    channels = "from ipykernel.kernelapp import IPKernelApp\napp = IPKernelApp.instance()\nprint(app.transport, app.ip)"
    page["cells"].insert(4, nbformat.v4.new_code_cell(channels, id="channel1"))
    (tmp_path / "nbs" / "tables").mkdir(parents=True)
    (tmp_path / "nbs" / "tables" / "airlines.ipynb").write_text(json.dumps(page))
    assert cli("run", "airlines", "--no-reports", settings=settings).returncode == 0
    log = Path(runner["log"])
    kernels = log.read_text().count("kernel: started in process")
    reported = cli("report", "airlines", settings=settings)
    assert reported.returncode == 0, reported.stdout + reported.stderr
    assert log.read_text().count("kernel: started in process") > kernels  # (other tests' may start meanwhile)
    executed = nbformat.read(tmp_path / "reports" / "default" / "airlines.ipynb", as_version=4)
    [cell] = [c for c in executed.cells if c.get("id") == "pltshow1"]
    assert any("image/png" in o.get("data", {}) for o in cell.outputs), cell.outputs
    # the kernel spoke over Unix sockets in a directory of its own (no TCP port to lose to another process), gone now
    [cell] = [c for c in executed.cells if c.get("id") == "channel1"]
    transport, ip = cell.outputs[0]["text"].split()
    assert transport == "ipc" and Path(ip).parent.name.startswith("kit-kernel-") and not Path(ip).parent.exists(), ip
    html = (tmp_path / "reports" / "default" / "airlines.html").read_text()
    assert html.count("data:image/png") >= 2 and "Traceback" not in html


def test_a_runner_records_itself_for_its_own_project_only(tmp_path):
    project, copy = tmp_path / "project", tmp_path / "copy"
    write_project(project, (), "sqlite:///s.db", "sqlite:///w.db")
    pid = await_runner(project, launch_runner(project), timeout=300)
    try:
        assert pid and json.loads(runner_files(project)["record"].read_text())["pid"] == pid
        subprocess.run(["cp", "-r", str(project), str(copy)], check=True)  # its record and socket copied too
        assert runner_pid(copy) is None  # the copy's record names the original's runner: not the copy's
        listed = typed("tables", cwd=copy)
        assert listed.returncode == 0, listed.stderr  # run by itself: the copied socket leads nowhere
        assert served(project) == [] and served(copy) == []

        # a client that sends garbage, or connects and goes, does not end the runner: the next command is served
        for garbage in (b"\x00\x00\x00\x05{{{{{", b"", b"\xff" * 4):
            with socket.socket(socket.AF_UNIX) as sock, reachable(runner_files(project)["socket"]) as where:
                sock.connect(where)
                sock.sendall(garbage)
        assert typed("tables", cwd=project).returncode == 0
        assert served(project) == ["tables"] and runner_pid(project) == pid
    finally:
        stop_runner(project)
