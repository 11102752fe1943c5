"""Deployments run the exported package: a real Prefect server and process work pool on 127.0.0.1, and two
workers whose environment holds only the built wheel (and its dependencies), started outside the source tree."""

from __future__ import annotations

import shutil
import subprocess
import time
import zipfile

import pytest
from conftest import CARRIER_TRANSFORM, ROOT, Webhook, assert_same_tables, table_rows
from pg_cluster import free_port
from prefect_stack import (
    deploy_all,
    pause_schedules,
    read_artifacts,
    run_deployments,
    settled_runs,
    start_server,
    start_worker,
    stop,
)

from my_package.common.db import make_engine
from my_package.dev.demo import DEMO_TABLES, example_settings


@pytest.fixture
def stack(tmp_path, worker_venv, demo_source, seed_prefect):
    "A Prefect server, the process work pool, the committed prefect.yaml deployed, and two workers w1 and w2."
    port, home = free_port(), tmp_path / "worker-home"
    api = f"http://127.0.0.1:{port}/api"
    home.mkdir()
    shutil.copy(demo_source, home / "source.db")
    hook = Webhook()
    settings = home / "settings.ini"
    settings.write_text(
        example_settings(DEMO_TABLES, "sqlite:///source.db", "sqlite:///warehouse.db")
        + CARRIER_TRANSFORM
        + f"\n[alerts]\nurl = {hook.url}\n"
    )
    processes = []
    base_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PREFECT_API_URL": api, "LANG": "C.UTF-8"}
    try:
        processes.append(start_server(port, seed_prefect(tmp_path / "server"), tmp_path / "server.log"))
        deploy_all(api, tmp_path / "deployer")
        # the tables' cron schedules would add runs whenever the clock passes one (05:00 UTC added four loads to a
        # run of this test): every run here is started by the test, or by a transform's trigger
        assert pause_schedules(api) >= len(DEMO_TABLES)
        for name in ("w1", "w2"):
            env = {
                **base_env,
                "PATH": f"{worker_venv / 'bin'}:/usr/bin:/bin",
                "PREFECT_HOME": str(home / f".prefect-{name}"),
                "MY_PACKAGE_SETTINGS": str(settings),
                "MY_PACKAGE_RUNNER": name,
            }
            processes.append(start_worker(worker_venv / "bin" / "prefect", name, home, env, tmp_path / f"{name}.log"))
        yield {
            "api": api,
            "home": home,
            "settings": settings,
            "hook": hook,
            "logs": tmp_path,
            "source": make_engine(f"sqlite:///{home / 'source.db'}"),
            "warehouse": make_engine(f"sqlite:///{home / 'warehouse.db'}"),
        }
    finally:
        for process in reversed(processes):
            stop(process)
        hook.close()


def test_deployments_run_the_wheel_on_two_workers(stack, worker_venv):
    where = subprocess.run(
        [str(worker_venv / "bin" / "python"), "-c", "import my_package; print(my_package.__file__)"],
        cwd=stack["home"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(worker_venv) in where and str(ROOT) not in where, "the workers must import the installed wheel"
    assert not (stack["home"] / "nbs").exists(), "the workers' directory has no source tree"
    nbdev = subprocess.run([str(worker_venv / "bin" / "python"), "-c", "import nbdev"], capture_output=True, text=True)
    assert nbdev.returncode != 0 and "No module named 'nbdev'" in nbdev.stderr, "a worker installs no authoring tools"
    shipped = zipfile.ZipFile(next((worker_venv.parent / "dist").glob("my_package-*.whl"))).namelist()
    assert {"my_package/notebooks/table_report.ipynb", "my_package/notebooks/flights.ipynb"} <= set(shipped)

    runs = run_deployments(stack["api"], [f"ingest-{t}" for t in DEMO_TABLES])
    logs = "".join((stack["logs"] / f"{w}.log").read_text() for w in ("w1", "w2"))
    assert all(r.state.type.value == "COMPLETED" for r in runs), (
        [(r.name, r.state.message) for r in runs],
        logs[-4000:],
    )
    assert_same_tables(stack["source"], stack["warehouse"])
    with stack["warehouse"].connect() as conn:
        runners = {r[0] for r in conn.exec_driver_sql("SELECT runner FROM _pipeline_runs WHERE status = 'ok'")}
    assert runners == {"w1", "w2"}, f"runs were taken by {runners}"
    index = (stack["home"] / "reports" / "default" / "index.html").read_text()
    for table in DEMO_TABLES:  # deployed table flows render their report (the packaged notebook) and refresh the index
        assert "<img" in (stack["home"] / "reports" / "default" / f"{table}.html").read_text()
        assert f'<a href="{table}.html">{table}</a>' in index
        artifacts = read_artifacts(stack["api"], f"ingest-{table}")
        assert artifacts and "rows loaded" in artifacts[-1] and f"{table}.html" in artifacts[-1], artifacts

    # the transform's deployment ran on its own when its inputs' deployments completed (flights, airlines: twice)
    triggered = settled_runs(stack["api"], "transform-carrier_monthly_delays", at_least=2)
    assert [r.state.type.value for r in triggered] == ["COMPLETED", "COMPLETED"], [r.state.message for r in triggered]
    assert len(table_rows(stack["warehouse"], "carrier_monthly_delays")) == 185
    [flights] = run_deployments(stack["api"], ["ingest-flights"])  # one input run: exactly one transform run
    assert flights.state.type.value == "COMPLETED"
    after = settled_runs(stack["api"], "transform-carrier_monthly_delays", at_least=len(triggered) + 1)
    assert len(after) == len(triggered) + 1 and after[-1].state.type.value == "COMPLETED", after
    assert after[-1].created > flights.created

    # the flows' own reports are shown above: the orchestration below runs without them (a kernel and the index
    # less per run), until the DuckDB warehouse, whose reports read its file while the other worker writes it
    no_reports = "\n[reports]\nin_flows = false\n"
    stack["settings"].write_text(stack["settings"].read_text() + no_reports)

    # the deployed ingest-all fans the tables out to the pool's workers: every table loaded once, both workers busy
    loads_before = loads_per_table(stack["warehouse"])
    [everything] = run_deployments(stack["api"], ["ingest-all"])
    assert everything.state.type.value == "COMPLETED", everything.state.message
    fanned = loads_per_table(stack["warehouse"], since=loads_before)
    assert {t: len(fanned.get(t, [])) for t in DEMO_TABLES} == dict.fromkeys(DEMO_TABLES, 1), fanned
    assert {runner for runs in fanned.values() for runner in runs} == {"w1", "w2"}, fanned
    assert_same_tables(stack["source"], stack["warehouse"])

    # two runs of one table at once: the second waits; exactly the source's rows
    first, second = run_deployments(stack["api"], ["ingest-planes", "ingest-planes"])
    assert first.state.type.value == second.state.type.value == "COMPLETED"
    assert table_rows(stack["warehouse"], "planes") == table_rows(stack["source"], "planes")

    # a failing flow: Failed in Prefect with the error, one alert, the previous table kept
    before, alerts = table_rows(stack["warehouse"], "planes"), len(stack["hook"].received)
    stack["settings"].write_text(
        stack["settings"].read_text().replace("primary_key = tailnum", "primary_key = manufacturer")
    )
    [failed] = run_deployments(stack["api"], ["ingest-planes"])
    assert failed.state.type.value == "FAILED"
    assert "Quality check failed for table 'planes'" in failed.state.message
    deadline = time.monotonic() + 60  # the hook runs after the run has entered Failed: wait for its alert
    while len(stack["hook"].received) == alerts and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # and make sure no second alert follows
    assert len(stack["hook"].received) == alerts + 1
    alert = stack["hook"].received[-1]["message"]
    assert "flow: ingest-planes" in alert and "task: check_staged_table" in alert and "primary key unique" in alert
    assert table_rows(stack["warehouse"], "planes") == before

    # a deployed ingest-all with a failing table fails, naming it; the other tables still load
    loads_before = loads_per_table(stack["warehouse"])
    [everything] = run_deployments(stack["api"], ["ingest-all"])
    assert everything.state.type.value == "FAILED"
    assert "1 of 5 failed: planes" in everything.state.message, everything.state.message
    fanned = loads_per_table(stack["warehouse"], since=loads_before)
    assert {t: len(fanned.get(t, [])) for t in DEMO_TABLES} == dict.fromkeys(DEMO_TABLES, 1), fanned
    assert table_rows(stack["warehouse"], "planes") == before

    # the same wheel writes into a DuckDB warehouse; the two workers' flow runs (processes) take turns with its file
    stack["settings"].write_text(
        stack["settings"]
        .read_text()
        .replace(no_reports, "")
        .replace("primary_key = manufacturer", "primary_key = tailnum")
        .replace("warehouse = sqlite:///warehouse.db", "warehouse = duckdb:///warehouse.duckdb")
    )
    tables, started = ("flights", "planes", "airlines", "weather"), time.time()
    runs = run_deployments(stack["api"], [f"ingest-{t}" for t in tables])
    assert all(r.state.type.value == "COMPLETED" for r in runs), [(r.name, r.state.message) for r in runs]
    duck = make_engine(f"duckdb:///{stack['home'] / 'warehouse.duckdb'}")
    assert_same_tables(stack["source"], duck, tables)
    with duck.connect() as conn:
        loaded = conn.exec_driver_sql("SELECT table_name, runner FROM _pipeline_runs WHERE status = 'ok'").fetchall()
    assert {table for table, _ in loaded} >= set(tables) and {runner for _, runner in loaded} <= {"w1", "w2"}
    page = stack["home"] / "reports" / "default" / "flights.html"  # rendered again, from the DuckDB warehouse
    assert page.stat().st_mtime > started and "<img" in page.read_text()


def loads_per_table(warehouse, since: dict | None = None) -> dict[str, list[str]]:
    "The runners of each table's recorded runs, by table (only the runs after those in `since`)."
    with warehouse.connect() as conn:
        rows = conn.exec_driver_sql("SELECT table_name, runner FROM _pipeline_runs ORDER BY finished_at").fetchall()
    runs: dict[str, list[str]] = {}
    for table, runner in rows:
        runs.setdefault(table, []).append(runner)
    return {t: r[len((since or {}).get(t, [])) :] for t, r in runs.items() if len(r) > len((since or {}).get(t, []))}
