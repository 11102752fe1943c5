"""The fast loop: one local Prefect server reused by every command, Prefect's settings applied by the kit itself,
tables in parallel, and light commands that import neither Prefect nor pandas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import heavy_imports, table_rows, wait_for, write_project

from my_package.common.db import make_engine


def kit(*args: str, project, home, extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    "`python -m my_package ARGS` run directly in `project`, as a user types it: no make, no Prefect settings set."
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    return subprocess.run(
        [sys.executable, "-m", "my_package", *args],
        cwd=project,
        env={**env, **(extra or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def api_post(url: str, body: dict | None = None) -> list | dict:
    "POST a filter (`body`, default empty) to a Prefect REST endpoint; return what it answers."
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def runs_of(api: str, flow: str) -> list[dict]:
    "The flow runs of the flow named `flow` on the Prefect server at `api`, found through its REST API."
    ids = {f["id"] for f in api_post(f"{api}/flows/filter") if f["name"] == flow}
    return [r for r in api_post(f"{api}/flow_runs/filter") if r["flow_id"] in ids]


def test_one_local_server_serves_every_command_and_the_kit_runs_without_it(tmp_path, demo_source, seed_prefect):
    from my_package.dev.server import free_port

    project, home = tmp_path / "project", tmp_path / "home"
    home.mkdir()
    write_project(project, ("airlines", "planes"), f"sqlite:///{demo_source}", "sqlite:///warehouse.db")
    seed_prefect(project / ".prefect")
    extra = {"PREFECT_PORT": str(free_port())}

    started = kit("server", "start", project=project, home=home, extra=extra)
    assert started.returncode == 0, started.stderr
    api = json.loads((project / ".prefect" / "server.json").read_text())["api"]
    try:
        assert "Prefect server up" in kit("server", "status", project=project, home=home).stderr
        for _ in range(2):
            ran = kit("run", "airlines", "--no-reports", project=project, home=home)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert f"{api.removesuffix('/api')}/runs/flow-run/" in ran.stderr  # each run's page in the UI
            assert "No Prefect server is up" not in ran.stderr
        log = project / ".prefect" / "runner.log"  # server start started the runner: both runs went through it
        assert log.read_text().count("run: started in process") == 2, log.read_text()
        airlines = runs_of(api, "ingest-airlines")
        assert [r["state_type"] for r in airlines] == ["COMPLETED", "COMPLETED"], airlines
    finally:
        stopped = kit("server", "stop", project=project, home=home)
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
    assert "No Prefect server is running" in kit("server", "status", project=project, home=home).stderr
    assert not (project / ".prefect" / "runner.sock").exists()  # server stop stopped the runner too

    after = kit("run", "planes", "--no-reports", project=project, home=home)  # no server: a temporary one, a hint
    assert after.returncode == 0, after.stdout + after.stderr
    assert "No Prefect server is up" in after.stderr and "server start" in after.stderr
    assert table_rows(make_engine(f"sqlite:///{project / 'warehouse.db'}"), "planes")


def test_run_typed_directly_keeps_prefect_out_of_home_and_quiet(tmp_path, demo_source, seed_prefect):
    import sqlite3

    project, home = tmp_path / "project", tmp_path / "home"
    home.mkdir()
    write_project(project, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///warehouse.db")
    database = seed_prefect(project / ".prefect") / "prefect.db"  # the temporary server skips the migrations
    ran = kit("run", "airlines", project=project, home=home)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert not (home / ".prefect").exists(), "Prefect wrote under ~/.prefect"
    with sqlite3.connect(database) as conn:  # Prefect's state belongs under the project: the run is recorded there
        assert conn.execute("SELECT count(*) FROM flow_run").fetchone()[0] >= 1, "the run went to another database"
    output = (ran.stdout + ran.stderr).lower()
    for noise in ("telemetry", "analytics", "traceback", "warning"):
        assert noise not in output, f"the run printed {noise!r}: {ran.stderr[-2000:]}"


def test_tables_run_in_parallel_and_the_summary_keeps_its_order(cli, tmp_path, demo_source):
    tables = ("airlines", "airports", "planes", "weather")
    settings = write_project(
        tmp_path,
        tables,
        f"sqlite:///{demo_source}",
        "sqlite:///warehouse.db",
        extra="\n[transform:fleet]\ninputs = planes\nprimary_key = manufacturer\n"
        "sql = SELECT manufacturer, count(*) AS planes FROM planes GROUP BY manufacturer\n",
    )
    out = cli("run", "--all", "--parallel", "4", "--no-reports", settings=settings)
    assert out.returncode == 0, out.stdout + out.stderr
    progress = [line.split(":")[0].strip() for line in out.stderr.splitlines() if ": ok (" in line]
    assert sorted(progress) == sorted([*tables, "fleet"]) and progress.index("fleet") > progress.index("planes")
    summary = [line.split("│")[1].strip() for line in out.stdout.splitlines() if line.startswith("│")]
    assert summary == [*tables, "fleet"], summary  # the order asked for, whatever order they finished in


COMMANDS_WITHOUT_FLOWS = (["tables"], ["check"], ["deployments", "--check"], ["--help"], ["server", "status"])


def test_commands_that_run_no_flow_import_neither_prefect_nor_pandas(tmp_path, demo_source):
    settings = write_project(tmp_path, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///w.db")
    assert (
        subprocess.run(
            [sys.executable, "-m", "my_package", "deployments", "--write"],
            env={**os.environ, "MY_PACKAGE_SETTINGS": str(settings)},
            capture_output=True,
        ).returncode
        == 0
    )
    for command in COMMANDS_WITHOUT_FLOWS:
        out = heavy_imports(command, settings, tmp_path)
        assert out.stdout.strip().splitlines()[-1] == "[]", (command, out.stdout, out.stderr[-1000:])


def test_a_run_of_database_tables_imports_no_pandas(tmp_path, demo_source, prefect_server, prefect_home):
    # pandas (through pyarrow.dataset too) costs a quarter of a second of CPU and 39 MB in every process that imports
    # it: the copies between databases never use it, so a command (or a deployed run) of such tables does not load it
    settings = write_project(tmp_path, ("airlines", "flights"), f"sqlite:///{demo_source}", "sqlite:///w.db")
    api = {"PREFECT_API_URL": prefect_server["api"], "PREFECT_HOME": str(prefect_home)}
    out = heavy_imports(["run", "airlines", "flights", "--no-reports"], settings, tmp_path, env=api, timeout=600)
    assert "flights" in out.stdout and "ok" in out.stdout, out.stdout + out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['prefect', 'pyarrow']", out.stdout + out.stderr[-2000:]


def events_of(api: str, flow_run_id: str) -> list[str]:
    "The names of the events the Prefect server at `api` holds about the flow run `flow_run_id`."
    body = {"filter": {"any_resource": {"id": [f"prefect.flow-run.{flow_run_id}"]}}, "limit": 50}
    return [e["event"] for e in api_post(f"{api}/events/filter", body)["events"]]


@pytest.mark.parametrize("via", ["itself", "runner"])
def test_a_command_runs_its_flows_without_heartbeats_unless_they_are_set(
    tmp_path, demo_source, prefect_server, via, request
):
    # Prefect's heartbeat thread holds each flow run up to a second as it ends; the command's runs send none, and a
    # user who wants them (an automation that marks dead runs Crashed) sets PREFECT_FLOWS_HEARTBEAT_FREQUENCY
    import re

    write_project(tmp_path, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///w.db")
    home = tmp_path / "home"
    home.mkdir()
    api = {"PREFECT_API_URL": prefect_server["api"], "PREFECT_HOME": str(prefect_server["home"])}
    served = lambda: 0  # noqa: E731
    if via == "runner":  # Prefect, imported by the runner, reads the variable each command sets
        runner = request.getfixturevalue("runner")
        api["MY_PACKAGE_RUNNER"] = runner["socket"]
        served = lambda: Path(runner["log"]).read_text().count("run: started in process")  # noqa: E731
    before = served()
    runs = {}
    for heartbeats in ("", "30"):
        extra = {**api, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": heartbeats} if heartbeats else api
        ran = kit("run", "airlines", "--no-reports", project=tmp_path, home=home, extra=extra)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        runs[heartbeats] = re.search(r"/runs/flow-run/([0-9a-f-]{36})", ran.stderr).group(1)
    assert served() >= before + 2 * (via == "runner")  # (other tests' commands may be served meanwhile)
    events = {}

    def stored() -> bool:  # the server stores events as it gets round to them, in batches
        events.update({k: events_of(prefect_server["api"], run) for k, run in runs.items()})
        ended = all("prefect.flow-run.Completed" in names for names in events.values())
        return ended and "prefect.flow-run.heartbeat" in events["30"]  # the later run's is in: so would the earlier's

    wait_for(stored, timeout=300, every=1)
    assert all("prefect.flow-run.Completed" in names for names in events.values()), events
    assert "prefect.flow-run.heartbeat" in events["30"], events["30"]  # set by the user: sent
    assert "prefect.flow-run.heartbeat" not in events[""], events[""]  # by default: none


def test_a_server_belongs_to_its_project_and_a_taken_port_is_said(tmp_path, demo_source, seed_prefect):
    import socket

    from my_package.dev.server import SERVER_PORT, free_port, port_in_use

    home = tmp_path / "home"
    home.mkdir()
    first, second = tmp_path / "first", tmp_path / "second"
    for project in (first, second):
        write_project(project, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///warehouse.db")
        seed_prefect(project / ".prefect")
    port = str(free_port())
    started = kit("server", "start", project=first, home=home, extra={"PREFECT_PORT": port})
    assert started.returncode == 0, started.stderr
    copy = tmp_path / "copy"
    try:
        # the second project asks for the same port: refused in one line that names it, nothing recorded
        refused = kit("server", "start", project=second, home=home, extra={"PREFECT_PORT": port})
        assert refused.returncode == 1, refused.stderr
        assert f"Port {port} on 127.0.0.1 is in use" in refused.stderr and "PREFECT_PORT" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        assert not (second / ".prefect" / "server.json").exists()
        status = kit("server", "status", project=second, home=home)
        assert status.returncode == 1 and "No Prefect server is running" in status.stderr
        ran = kit("run", "airlines", "--no-reports", project=second, home=home)  # never the first project's server
        assert ran.returncode == 0 and f"127.0.0.1:{port}" not in ran.stderr, ran.stderr

        # a copy of the first project (its .prefect/server.json and runner's socket too, as `cp -r` copies them)
        # neither sees nor stops the first's server, and its commands never reach the first's runner
        subprocess.run(["cp", "-r", str(first), str(copy)], check=True)
        assert kit("server", "status", project=copy, home=home).returncode == 1
        served = (first / ".prefect" / "runner.log").read_text().count("started in process")
        assert kit("tables", project=copy, home=home).returncode == 0
        assert (first / ".prefect" / "runner.log").read_text().count("started in process") == served
        assert "No Prefect server is running" in kit("server", "stop", project=copy, home=home).stderr
        assert kit("server", "status", project=first, home=home).returncode == 0

        # the default port taken: the second project's server takes a free one and says which
        blocker = socket.socket()
        if not port_in_use(SERVER_PORT):
            blocker.bind(("127.0.0.1", SERVER_PORT))
            blocker.listen()
        try:
            moved = kit("server", "start", project=second, home=home)
        finally:
            blocker.close()
        assert moved.returncode == 0, moved.stderr
        assert f"Port {SERVER_PORT} is in use, so it listens on" in moved.stderr
        assert kit("server", "status", project=second, home=home).returncode == 0
    finally:
        kit("server", "stop", project=second, home=home)
        stopped = kit("server", "stop", project=first, home=home)
    assert "stopped" in stopped.stderr


def test_a_process_that_imports_prefect_first_compiles_no_grammar():
    # jsonschema 4.25+ imports rfc3987-syntax (JupyterLab's extras install it), which compiles Earley parsers: 1.6-1.8
    # s on every process of a dev install that imports Prefect before the kit can skip it (a server, a worker's flow
    # run, a kernel): pyproject.toml keeps jsonschema below 4.25
    code = "import sys, prefect, papermill, my_package.flows.ingestion\nprint(sorted(m for m in ('rfc3987_syntax', 'lark') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", f"importing Prefect compiled a grammar: {out.stdout}"
