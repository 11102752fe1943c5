"""It tells the truth when things go wrong: a failing report is seen, Ctrl-C cancels, a lost server is said, and
what a hard kill leaves is found by `check` and cleaned by the next run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import ROOT, Webhook, row_counts, wait_for, write_project

from my_package.common.bookkeeping import loading_marks
from my_package.common.db import make_engine
from my_package.dev.runner import LOST, await_runner, launch_runner, stop_runner
from my_package.dev.server import free_port, start_server, stop_process

BIG_ROWS = 2_000_000


def kit_env(project: Path, home: Path, extra: dict | None = None) -> dict:
    "The environment of a user typing `python -m my_package ...` in `project`: no make, no Prefect settings."
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    return {**env, **(extra or {})}


def kit(*args: str, project: Path, home: Path, extra: dict | None = None, timeout: int = 600):
    "Run `python -m my_package ARGS` in `project` and wait for it."
    return subprocess.run(
        [sys.executable, "-m", "my_package", *args],
        cwd=project,
        env=kit_env(project, home, extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_kit(*args: str, project: Path, home: Path, extra: dict | None = None) -> subprocess.Popen:
    "Start `python -m my_package ARGS` in `project` without waiting (its own process group, like a terminal's)."
    return subprocess.Popen(
        [sys.executable, "-m", "my_package", *args],
        cwd=project,
        env=kit_env(project, home, extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def make_big_source(path: Path, rows: int = BIG_ROWS) -> None:
    "A SQLite source with a `big` table of `rows` rows (made by SQLite itself: a few seconds)."
    with sa.create_engine(f"sqlite:///{path}").begin() as conn:
        conn.exec_driver_sql("CREATE TABLE big (id INTEGER NOT NULL, name TEXT, price REAL, at TIMESTAMP)")
        conn.exec_driver_sql(
            f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) "
            "INSERT INTO big SELECT i, 'item ' || i, i * 0.25, '2024-01-01 00:00:00.000000' FROM n"
        )


def watch_stderr(process: subprocess.Popen, text: str) -> tuple[list[str], threading.Event, threading.Thread]:
    "Read `process`'s stderr in a thread (ends with it): its lines so far, and an event set once a line holds `text`."
    lines, seen = [], threading.Event()

    def read() -> None:
        for line in process.stderr:
            lines.append(line)
            if text in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, seen, reader


def has_table(database: Path, name: str) -> bool:
    "True when the SQLite file `database` has a table `name`; False while it does not, or while a writer locks it."
    if not database.exists():
        return False
    try:
        with sa.create_engine(f"sqlite:///{database}?timeout=1").connect() as conn:
            return name in sa.inspect(conn).get_table_names()
    except sa.exc.OperationalError:  # "database is locked": the load is committing; the next poll reads it
        return False


def source_is_read(source: Path) -> bool:
    "True while a connection reads the SQLite file `source` (a rollback journal's: a writer's lock fails then)."
    with contextlib.closing(sqlite3.connect(source, timeout=0, isolation_level=None)) as probe:
        try:
            probe.execute("BEGIN EXCLUSIVE")
        except sqlite3.OperationalError:  # database is locked: a reader holds it
            return True
        probe.execute("ROLLBACK")
        return False


def thread_state(task: Path) -> str:
    "The state letter of one thread (`/proc/PID/task/TID`): R running, S sleeping, T stopped; X once it is gone."
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:  # a thread that ended meanwhile
        return "X"


def wait_until_stopped(pid: int, timeout: float = 30) -> None:
    "Wait until every thread of process `pid` has stopped (SIGSTOP is delivered after `kill` returns)."
    stopped = lambda: all(thread_state(task) in "tTX" for task in Path(f"/proc/{pid}/task").iterdir())  # noqa: E731
    assert wait_for(stopped, timeout, every=0.001), f"process {pid} did not stop"


def commands_of(runner: int) -> list[int]:
    "The commands a runner runs now: its children that lead a process group of their own."
    found = []
    for entry in Path("/proc").iterdir():
        try:
            state, parent, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):  # not a process, or one that ended meanwhile
            continue
        if int(parent) == runner and int(group) == int(entry.name) and state != "Z":
            found.append(int(entry.name))
    return found


def the_command(process: subprocess.Popen, runner: int | None) -> int | None:
    "The process group that runs the command `process` typed: its own, or its runner's child for it (None until forked)."
    if runner is None:
        return process.pid
    children = commands_of(runner)
    assert len(children) <= 1, f"the runner runs {len(children)} commands; this test starts one at a time"
    return children[0] if children else None


@contextlib.contextmanager
def stopped_in_its_copy(
    process: subprocess.Popen, warehouse: Path, source: Path, staging: str, runner: int | None = None
) -> Iterator[int]:
    """Stop the command `process` typed (SIGSTOP) while its load copies `source` into `staging` of `warehouse`;
    continue it after the block, which gets the stopped process group (`process`'s, or its `runner`'s child's).

    What the block does (a Ctrl-C, a kill, a lost server) then lands in the copy, whatever the machine's pace: a copy
    holds the source's read lock from its start to its commit, which comes before the checks and the publish. Seeing
    the staging table alone is not enough: on a fast machine the load may publish before a signal sent then arrives.
    """
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        group = the_command(process, runner)
        if group and has_table(warehouse, staging):
            os.killpg(group, signal.SIGSTOP)
            try:
                wait_until_stopped(group)
                copying = source_is_read(source)
            except BaseException:  # never leave it stopped
                os.killpg(group, signal.SIGCONT)
                raise
            if copying:
                try:
                    yield group
                finally:
                    with contextlib.suppress(ProcessLookupError):  # the block may have killed it
                        os.killpg(group, signal.SIGCONT)
                return
            os.killpg(group, signal.SIGCONT)
        time.sleep(0.02)
    raise AssertionError(f"the load was never seen copying into {staging}")


@contextlib.contextmanager
def runner_for(project: Path, via: str) -> Iterator[int | None]:
    "With `via` 'runner', the project's runner up while inside (its process id); with 'itself', none (None)."
    if via == "itself":
        yield None
        return
    pid = await_runner(project, launch_runner(project), timeout=300)
    assert pid, (project / ".prefect" / "runner.log").read_text()
    try:
        yield pid
    finally:
        stop_runner(project)


def served_commands(project: Path) -> list[str]:
    "The commands the project's runner ran, from its log, in order."
    log = project / ".prefect" / "runner.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split()[2].rstrip(":") for line in lines if ": started in process" in line]


def flow_run_states(api: str, flow: str) -> list[str]:
    "The state types of the runs of `flow` on the Prefect server at `api`, oldest first."
    return [r["state_type"] for r in flow_runs(api, flow)]


def flow_runs(api: str, flow: str) -> list[dict]:
    "The runs of `flow` on the Prefect server at `api`, oldest first."

    def post(path: str, body: dict) -> list[dict]:
        request = urllib.request.Request(
            f"{api}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    ids = {f["id"] for f in post("/flows/filter", {}) if f["name"] == flow}
    runs = [r for r in post("/flow_runs/filter", {}) if r["flow_id"] in ids]
    return sorted(runs, key=lambda r: r["created"])


@pytest.fixture
def project_server(tmp_path, seed_prefect):
    "A project (two demo tables) whose own local server is up; yields (project, home, api); stops the server."
    project, home = tmp_path / "project", tmp_path / "home"
    home.mkdir()
    seed_prefect(project / ".prefect")
    yield_value = {"project": project, "home": home, "port": str(free_port())}
    yield yield_value
    if project.exists():
        kit("server", "stop", project=project, home=home)


def raising_notebook(project: Path, table: str) -> None:
    "Give `table` its own report notebook (the generic one plus a cell that raises)."
    nb = json.loads((ROOT / "nbs" / "tables" / "table_report.ipynb").read_text())
    nb["cells"].insert(4, {"cell_type": "code", "execution_count": None, "id": "b0rked02", "metadata": {},
                           "outputs": [], "source": 'raise ValueError("no report today")'})  # fmt: skip
    (project / "nbs" / "tables").mkdir(parents=True, exist_ok=True)
    (project / "nbs" / "tables" / f"{table}.ipynb").write_text(json.dumps(nb))


def test_a_report_that_fails_in_the_background_is_seen_everywhere(project_server, demo_source):
    project, home, port = project_server["project"], project_server["home"], project_server["port"]
    hook = Webhook()
    try:
        alerts = f"\n[alerts]\nurl = {hook.url}\n"
        write_project(project, ("airlines", "planes"), f"sqlite:///{demo_source}", "sqlite:///warehouse.db", alerts)
        raising_notebook(project, "airlines")
        assert kit("server", "start", project=project, home=home, extra={"PREFECT_PORT": port}).returncode == 0
        ran = kit("run", "airlines", "planes", project=project, home=home)
        assert ran.returncode == 0, ran.stderr  # the tables loaded; their reports render in the background
        assert "render in the background" in ran.stderr
        manifest = project / "reports" / "default" / "reports.json"

        def settled() -> bool:
            return manifest.exists() and all(
                e["status"] != "rendering" for e in json.loads(manifest.read_text()).values()
            )

        assert wait_for(settled, timeout=300, every=0.5), manifest.read_text()

        listed = kit("tables", project=project, home=home, extra={"COLUMNS": "80"})
        assert listed.returncode == 0, listed.stderr
        assert "FAILED" in listed.stdout
        assert "report of airlines FAILED" in listed.stderr and "ValueError: no report today" in listed.stderr
        page = project / "reports" / "default" / "index.html"  # the renderer writes it after the manifest
        shown = lambda: page.exists() and "FAILED" in page.read_text() and "no report today" in page.read_text()  # noqa: E731
        assert wait_for(shown, timeout=60, every=0.5), page.read_text() if page.exists() else "no index"
        assert wait_for(lambda: any("report airlines" in str(a) for a in hook.received), timeout=60)
        assert "no report today" in str(hook.received)

        again = kit("run", "planes", "--no-reports", project=project, home=home)  # the next command says it too
        assert again.returncode == 0 and "report of airlines FAILED" in again.stderr, again.stderr
        waited = kit("run", "airlines", "--wait", project=project, home=home)
        assert waited.returncode == 1, waited.stderr
        assert "report airlines" in waited.stderr and "no report today" in waited.stdout + waited.stderr
    finally:
        hook.close()


@pytest.mark.parametrize("via", ["itself", "runner"])
def test_ctrl_c_cancels_a_load_and_a_second_one_leaves_what_check_finds_and_the_next_run_cleans(
    tmp_path, seed_prefect, via
):
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    make_big_source(project / "source.db")
    settings = "[pipeline]\n[profile:default]\nsource = sqlite:///source.db\nwarehouse = sqlite:///warehouse.db\n"
    (project / "settings.ini").write_text(settings + "[table:big]\nsource_table = big\nprimary_key = id\n")
    api_port = free_port()
    server = start_server(seed_prefect(tmp_path / "prefect"), api_port, tmp_path / "server.log")
    extra = {"PREFECT_API_URL": f"http://127.0.0.1:{api_port}/api"}
    warehouse, source = project / "warehouse.db", make_engine(f"sqlite:///{project / 'source.db'}")
    try:
        ctrl_c_kill_and_clean(project, home, extra, warehouse, source, via)
    finally:
        stop_process(server.pid)


def ctrl_c_kill_and_clean(project: Path, home: Path, extra: dict, warehouse: Path, source: sa.Engine, via: str) -> None:
    "The Ctrl-C test's steps, with the commands run by themselves or through the project's runner (`via`)."
    with runner_for(project, via) as runner:
        first = kit("run", "big", "--no-reports", project=project, home=home, extra=extra)
        assert first.returncode == 0, first.stderr
        with source.begin() as conn:  # the source moves on; the run that would publish it is cancelled
            conn.exec_driver_sql(f"INSERT INTO big VALUES ({BIG_ROWS + 1}, 'late', 1.0, '2024-01-02 00:00:00.000000')")

        running = start_kit("run", "big", "--no-reports", project=project, home=home, extra=extra)
        with stopped_in_its_copy(running, warehouse, project / "source.db", "_staging_big", runner):
            os.killpg(running.pid, signal.SIGINT)  # one Ctrl-C, as a terminal sends it
        out, err = running.communicate(timeout=120)
        assert running.returncode == 130, err
        assert "Ctrl-C: stopping the loads in progress" in err and "big: cancelled" in err, err
        assert "Traceback" not in err
        assert not has_table(warehouse, "_staging_big"), "the cancelled load dropped its staging table"
        with make_engine(f"sqlite:///{warehouse}").connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM big").scalar_one() == BIG_ROWS  # unchanged
        assert flow_run_states(extra["PREFECT_API_URL"], "ingest-big") == ["COMPLETED", "CANCELLED"]

        # two Ctrl-C: it quits at once
        running = start_kit("run", "big", "--no-reports", project=project, home=home, extra=extra)
        lines, stopping, reader = watch_stderr(running, "Ctrl-C: stopping the loads")
        with stopped_in_its_copy(running, warehouse, project / "source.db", "_staging_big", runner):
            os.killpg(running.pid, signal.SIGINT)
        # the second once the first is handled: two signals before the handler runs would count as one
        assert stopping.wait(120), "".join(lines)
        os.killpg(running.pid, signal.SIGINT)
        running.wait(timeout=120)
        running.stdout.read()
        reader.join(timeout=30)  # every line read: the process has ended, so its stderr has
        assert running.returncode == 130 and "Quit at once" in "".join(lines), "".join(lines)

        # a hard kill leaves its staging table and its run RUNNING: check finds both, the next run cleans them
        runs = len(flow_run_states(extra["PREFECT_API_URL"], "ingest-big"))
        running = start_kit("run", "big", "--no-reports", project=project, home=home, extra=extra)
        # quitting at once may have left a staging table and a load's mark: wait for this run's own mark (the next
        # run finds a killed load by it; a run killed before it marks its load stays RUNNING in Prefect)
        assert wait_for(lambda: flow_run_states(extra["PREFECT_API_URL"], "ingest-big")[runs:] == ["RUNNING"])
        own = flow_runs(extra["PREFECT_API_URL"], "ingest-big")[-1]["id"]
        marked = lambda: own in {m["flow_run_id"] for m in loading_marks(make_engine(f"sqlite:///{warehouse}"))}  # noqa: E731
        assert wait_for(marked), "the load never started"
        with stopped_in_its_copy(running, warehouse, project / "source.db", "_staging_big", runner):
            os.killpg(running.pid, signal.SIGKILL)
        running.communicate(timeout=120)
        assert "RUNNING" in flow_run_states(extra["PREFECT_API_URL"], "ingest-big")
        checked = kit("check", project=project, home=home, extra=extra)
        assert checked.returncode == 1, checked.stderr
        assert "_staging_big was left by an interrupted load" in checked.stderr
        assert "table big: a load started" in checked.stderr and "may still show RUNNING" in checked.stderr

        rerun = kit("run", "big", "--no-reports", project=project, home=home, extra=extra)
        assert rerun.returncode == 0, rerun.stderr
        assert "dropped _staging_big, left by an interrupted run" in rerun.stderr
        assert "left RUNNING by an interrupted run" in rerun.stderr and "Crashed" in rerun.stderr
        assert row_counts(make_engine(f"sqlite:///{warehouse}"), "big") == row_counts(source, "big")
        assert kit("check", project=project, home=home, extra=extra).returncode == 0
        assert "RUNNING" not in flow_run_states(extra["PREFECT_API_URL"], "ingest-big")
    if runner:  # every command of the test went through the runner
        assert served_commands(project) == ["run", "run", "run", "run", "check", "run", "check"], served_commands(
            project
        )


def test_a_runner_killed_during_a_load_is_said_at_once_and_its_load_is_as_after_a_crash(tmp_path, seed_prefect):
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    make_big_source(project / "source.db")
    settings = "[pipeline]\n[profile:default]\nsource = sqlite:///source.db\nwarehouse = sqlite:///warehouse.db\n"
    (project / "settings.ini").write_text(settings + "[table:big]\nsource_table = big\nprimary_key = id\n")
    api_port = free_port()
    server = start_server(seed_prefect(tmp_path / "prefect"), api_port, tmp_path / "server.log")
    extra = {"PREFECT_API_URL": f"http://127.0.0.1:{api_port}/api"}
    warehouse, source = project / "warehouse.db", make_engine(f"sqlite:///{project / 'source.db'}")
    try:
        with runner_for(project, "runner") as runner:
            first = kit("run", "big", "--no-reports", project=project, home=home, extra=extra)
            assert first.returncode == 0, first.stderr
            running = start_kit("run", "big", "--no-reports", project=project, home=home, extra=extra)
            with stopped_in_its_copy(running, warehouse, project / "source.db", "_staging_big", runner) as command:
                killed_at = time.monotonic()
                os.kill(runner, signal.SIGKILL)
            out, err = running.communicate(timeout=120)
            took = time.monotonic() - killed_at
        assert running.returncode == 1, err
        assert took < 10, f"{took:.1f} s to say the runner was lost"
        assert LOST in err and err.count("runner") == 1 and "Traceback" not in err, err  # one line, once
        assert wait_for(lambda: not Path(f"/proc/{command}").exists(), 30), "the command outlived its runner"
        assert served_commands(project) == ["run", "run"]

        # as after a crash: the staging table and the RUNNING flow run are found, then cleaned (no runner: by itself)
        assert has_table(warehouse, "_staging_big")
        checked = kit("check", project=project, home=home, extra=extra)
        assert checked.returncode == 1 and "_staging_big was left by an interrupted load" in checked.stderr
        rerun = kit("run", "big", "--no-reports", project=project, home=home, extra=extra)
        assert rerun.returncode == 0, rerun.stderr
        assert "dropped _staging_big, left by an interrupted run" in rerun.stderr and "Crashed" in rerun.stderr
        assert row_counts(make_engine(f"sqlite:///{warehouse}"), "big") == row_counts(source, "big")
        assert served_commands(project) == ["run", "run"]  # the runner is gone: they ran by themselves
    finally:
        stop_process(server.pid)


@pytest.mark.parametrize("via", ["itself", "runner"])
def test_a_lost_server_is_said_within_seconds_with_what_loaded(tmp_path, demo_source, seed_prefect, via):
    project, home = tmp_path / "project", tmp_path / "home"
    home.mkdir()
    big = "\n[table:big]\nsource = big\nsource_table = big\nprimary_key = id\n"  # from a named source, below
    settings = write_project(project, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///warehouse.db", big)
    settings.write_text(settings.read_text().replace("warehouse = ", "big = sqlite:///big.db\nwarehouse = ", 1))
    make_big_source(project / "big.db")
    port = free_port()
    server = start_server(seed_prefect(tmp_path / "prefect"), port, tmp_path / "server.log")
    extra = {"PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    try:
        with runner_for(project, via) as runner:
            running = start_kit(
                "run", "--all", "--no-reports", "--parallel", "1", project=project, home=home, extra=extra
            )
            with stopped_in_its_copy(running, project / "warehouse.db", project / "big.db", "_staging_big", runner):
                killed_at = time.monotonic()
                os.killpg(server.pid, signal.SIGKILL)  # the Prefect server dies mid-run
            out, err = running.communicate(timeout=120)
            took = time.monotonic() - killed_at
    finally:
        stop_process(server.pid)
    assert served_commands(project) == (["run"] if runner else [])
    assert running.returncode == 1, err
    assert took < 30, f"{took:.0f} s to notice the lost server"
    assert f"The Prefect server at http://127.0.0.1:{port} stopped answering" in err
    assert "Run summary" in out and "airlines" in out, out  # what loaded, from the warehouse's run log
    assert "EventsWorker" not in out + err and "Traceback" not in out + err
    assert len(err) < 4000, err  # lines, not dumps


def test_tables_fits_80_columns_and_files_follow_the_umask(cli, tmp_path, demo_source):
    settings = write_project(tmp_path, ("airlines", "flights"), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    assert cli("run", "airlines", "--no-reports", settings=settings).returncode == 0
    narrow = cli("tables", settings=settings, env={"COLUMNS": "80"})
    assert narrow.returncode == 0, narrow.stderr
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80, narrow.stdout
    assert "airlines" in narrow.stdout and "flights" in narrow.stdout and "…" not in narrow.stdout
    assert "ok at" in narrow.stdout
    wide = cli("tables", "--wide", settings=settings, env={"COLUMNS": "120"})
    assert "ingest-airlines" in wide.stdout  # every column

    env = {**os.environ, "MY_PACKAGE_SETTINGS": str(settings), "PREFECT_API_URL": ""}
    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        shutil.rmtree(tmp_path / "reports", ignore_errors=True)
        subprocess.run(
            [sys.executable, "-c", "from my_package.reporting.index import write_index as w; from my_package.registry."
             "settings import load_settings as l; from my_package.common.runs import resolve_run as r; "
             "s = l(); w(s, r('airlines', settings=s).warehouse, 'default')"],
            env=env, cwd=tmp_path, check=True, preexec_fn=lambda u=umask: os.umask(u),
        )  # fmt: skip
        for page in (tmp_path / "reports" / "index.html", tmp_path / "reports" / "default" / "index.html"):
            assert page.stat().st_mode & 0o777 == mode, (oct(page.stat().st_mode), umask)


def test_check_does_not_run_a_transform_that_computes_a_dataframe(cli, tmp_path, demo_source):
    module = tmp_path / "slow_transforms.py"
    marker = tmp_path / "was_called"
    module.write_text(
        "import pandas as pd\n\n"
        "def per_carrier(warehouse) -> pd.DataFrame:\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    return pd.read_sql('SELECT carrier, count(*) AS n FROM flights GROUP BY carrier', warehouse)\n"
    )
    transform = (
        "\n[transform:per_carrier]\ninputs = flights\nprimary_key = carrier\nfunction = slow_transforms:per_carrier\n"
    )
    settings = write_project(tmp_path, ("flights",), f"sqlite:///{demo_source}", "sqlite:///wh.db", transform)
    env = {"PYTHONPATH": str(tmp_path)}
    assert cli("deployments", "--write", settings=settings).returncode == 0
    assert cli("run", "flights", "--no-reports", settings=settings, env=env).returncode == 0
    checked = cli("check", settings=settings, env=env)
    assert checked.returncode == 0, checked.stderr
    assert not marker.exists(), "check ran the transform's computation"
    module.write_text(module.read_text().replace("def per_carrier(warehouse)", "def per_carrier()"))
    wrong = cli("check", settings=settings, env=env)
    assert wrong.returncode == 1 and "must take one argument, the warehouse" in wrong.stderr, wrong.stderr


def test_a_signal_the_kernel_gives_another_thread_is_handled_while_flows_run():
    "A process's signal may land on any of its threads: Python handles it in the main thread, once that one wakes."
    from my_package.common.runs import RunOutcome
    from my_package.flows.orchestration import run_in_order

    handled, main = threading.Event(), threading.main_thread().ident
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: handled.set())

    def in_wait() -> bool:
        "True while the main thread is in a `wait` of threading's (waiting for the flows)."
        frame = sys._current_frames().get(main)
        return frame is not None and frame.f_code.co_name == "wait" and frame.f_code.co_filename == threading.__file__

    def asleep_in_wait() -> bool:
        "True when the main thread is in that `wait` and still there 50 ms on (the GIL free meanwhile): asleep in it."
        if not in_wait():
            return False
        time.sleep(0.05)
        return in_wait()

    def start(name: str) -> RunOutcome:
        assert wait_for(asleep_in_wait, 60, every=0.01)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # to this flow's thread, not the main one
        return RunOutcome(name, "ok" if handled.wait(30) else "failed", error="handled only after the flow ended")

    try:
        outcomes = run_in_order(["a"], {}, start, parallel=1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert [o.status for o in outcomes] == ["ok"], outcomes
