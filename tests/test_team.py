"""A team's production on 127.0.0.1, as the README's "Deploying" sets it up: a Prefect server whose database is
PostgreSQL, `make deploy`, process workers with a limit (from the wheel, outside the source tree), and one
PostgreSQL (max_connections 50) holding both the server's database and the warehouse. The server answers 500 for
a while, a worker is SIGKILLed while it loads, runs are left PENDING and RUNNING by workers that died: every
table stays exact, nothing waits for ever, and what is left is cleaned. The 35-table, three-worker version is
`bench/bench_team.py` (make bench)."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
import sqlalchemy as sa
from conftest import Webhook, row_counts, wait_for
from pg_cluster import start_cluster, stop_cluster
from prefect_stack import (
    ConnectionPeaks,
    copies,
    flow_runs,
    run_log,
    start_runs,
    team_stack,
    wait_for_run,
    worker_of,
)

from my_package.common.db import make_engine
from my_package.errors import DatabaseUnavailableError

TABLES = copies(3)  # the demo's five, and flights_2, airlines_2, airports_2
# crash_after: three heartbeats, the default (two would mark Crashed a live run whose one heartbeat was lost while
# the server answered 500, or one slow to start on a loaded machine)
CONCURRENCY, WORKER_LIMIT, CRASH_AFTER, TIME_LIMIT = 5, 3, 90, 300
DEPLOYMENTS = (
    f"concurrency = {CONCURRENCY}\nworker_limit = {WORKER_LIMIT}\nheartbeat = 30\ncrash_after = {CRASH_AFTER}\n"
    f"ingest_all_timeout = {TIME_LIMIT}\n"
)
# the README's arithmetic: each flow run holds at most 3 connections to the warehouse (its load lock, a statement,
# a COPY's own), the deployed ingest-all 1 (it reads the run log)
PER_RUN = 3


def exact(source: sa.Engine, warehouse: sa.Engine) -> None:
    "Each table of TABLES holds exactly the rows of the source table it copies."
    for name, copied in TABLES.items():
        assert row_counts(warehouse, name) == row_counts(source, copied), f"{name} differs from the source's {copied}"


def staging_tables(warehouse: sa.Engine) -> list[str]:
    "The staging tables in the warehouse (a load in progress, or left by one)."
    return [t for t in sa.inspect(warehouse).get_table_names() if t.startswith("_staging_")]


def table_runs(api: str, since) -> list:
    "The runs of the tables' deployments created after `since`."
    return [r for r in flow_runs(api, [f"ingest-{t}" for t in TABLES]) if r.created > since]


def test_a_teams_production_survives_a_killed_worker_and_server_errors(tmp_path, worker_venv, demo_source):
    hook = Webhook()
    with team_stack(tmp_path, demo_source, TABLES, worker_venv / "bin" / "prefect", DEPLOYMENTS, hook.url) as stack:
        api, workers = stack["api"], stack["workers"]
        source, warehouse = make_engine(f"sqlite:///{demo_source}"), make_engine(stack["warehouse"])
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings
        from prefect.states import Pending, Running

        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            # what `make deploy` set: the pool's limit, the automation over every deployment of the project
            assert client.read_work_pool("pipeline-pool").concurrency_limit == CONCURRENCY
            [automation] = client.read_automations_by_name("pipeline-pool: mark silent runs Crashed")
            assert automation.trigger.within.total_seconds() == CRASH_AFTER
            assert len(automation.trigger.match_related.root["prefect.resource.id"]) == len(TABLES) + 1
        for name in ("w1", "w2"):
            stack["start"](name, WORKER_LIMIT)

        # 1. the first ingest-all, and the worker that does not run it SIGKILLed while it loads a table (its flows
        # die as they next write to the worker's pipe): ingest-all ends, naming the crashed tables; no staging table
        [everything] = start_runs(api, ["ingest-all"])
        assert wait_for(lambda: worker_of(workers, everything.id), timeout=600, every=0.5), "ingest-all never ran"
        victim = next(name for name in workers if name != worker_of(workers, everything.id))

        def loading_on_victim() -> bool:
            if not sa.inspect(warehouse).has_table("_pipeline_loading"):  # no load has started yet
                return False
            with warehouse.connect() as conn:
                marks = conn.exec_driver_sql(f"SELECT table_name FROM _pipeline_loading WHERE runner = '{victim}'")
                return any(f"_staging_{t}" in staging_tables(warehouse) for (t,) in marks)

        assert wait_for(loading_on_victim, timeout=600, every=0.05), f"{victim} never loaded a table"
        os.kill(workers[victim].pid, signal.SIGKILL)
        killed = time.monotonic()

        # ...and, meanwhile, two runs as workers that died leave them: one claimed (PENDING) and never started, one
        # RUNNING with no heartbeat (in a paused queue of the pool, which no worker takes runs from). Each takes its
        # deployment's one slot, so they are parked once ingest-all's own runs of those deployments have ended
        # (parked sooner, one of them waited for the slot instead: AwaitingConcurrencySlot, not Pending).
        parked = ("ingest-airlines_2", "ingest-airports_2")

        def ended_in_ingest_all() -> bool:
            ours = [r for r in flow_runs(api, list(parked)) if r.created > everything.created]
            return len(ours) == len(parked) and all(r.state.is_final() for r in ours)

        assert wait_for(ended_in_ingest_all, timeout=TIME_LIMIT, every=0.5), "ingest-all's runs of them never ended"
        with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
            client.create_work_queue("parked", is_paused=True, work_pool_name="pipeline-pool")
            left = []
            for name in parked:
                deployment = client.read_deployment_by_name(f"{name}/{name}")
                run = client.create_flow_run_from_deployment(deployment.id, work_queue_name="parked")
                assert client.set_flow_run_state(run.id, Pending()).state.is_pending()  # it takes the slot
                left.append(run.id)
            assert client.set_flow_run_state(left[1], Running()).state.is_running()  # ...started, then died at once

        done = wait_for_run(api, everything.id, TIME_LIMIT + 120)
        print(f"ingest-all ended {time.monotonic() - killed:.0f} s after the kill: {done.state.message}")
        assert done.state.type.value == "FAILED" and "(crashed)" in done.state.message, done.state.message
        assert "not finished" not in done.state.message, "a run was left for ingest-all's time limit to end"
        named = [n for n in done.state.message.split(": ", 1)[1].split(", ")]
        crashed = [n.removesuffix(" (crashed)") for n in named if n.endswith(" (crashed)")]
        assert set(crashed) <= set(TABLES), named
        assert staging_tables(warehouse) == [], "a killed run left its staging table"
        for run_id in left:  # marked Crashed by the automation `make deploy` installed
            ended = wait_for_run(api, run_id, 300)
            assert ended.state.type.value == "CRASHED" and f"Silent for {CRASH_AFTER} s" in ended.state.message, (
                ended.state
            )
        here = set(sa.inspect(warehouse).get_table_names())
        # a crashed first load published all or nothing (its process may die after its swap committed: the run is
        # Crashed, the table exact); the others are exact
        for name, copied in TABLES.items():
            if name not in crashed or name in here:
                assert row_counts(warehouse, name) == row_counts(source, copied), name
        checked = check(stack, api)
        assert checked.returncode == 0, checked.stdout + checked.stderr  # warnings only
        for name in set(crashed) - here:
            assert f"table {name}: not in the warehouse yet" in " ".join(checked.stderr.split()), checked.stderr

        # 2. a new worker; the next ingest-all makes every table exact, while the server answers 500 for 8 s (and
        # drops every connection) as its tables run: no table is reported failed, no alert is sent
        stack["start"]("w3", WORKER_LIMIT)
        survivor, rerun_at = next(name for name in ("w1", "w2") if name != victim), datetime.datetime.now(datetime.UTC)
        peaks = ConnectionPeaks(stack["cluster"]["admin_url"])
        [everything] = start_runs(api, ["ingest-all"])
        running = lambda: [r for r in table_runs(api, everything.created) if r.state.type.value == "RUNNING"]  # noqa: E731
        assert wait_for(lambda: len(running()) >= 2, timeout=600, every=0.5), "no table ran"
        stack["proxy"].fail_for(8)
        done = wait_for_run(api, everything.id, 900)
        connections = peaks.stop()
        print(f"connections at their peak: {connections} (bound on the warehouse: {CONCURRENCY * PER_RUN + 1})")
        why = {r.name: r.state.message for r in table_runs(api, everything.created) if not r.state.is_completed()}
        assert done.state.type.value == "COMPLETED", f"{done.state.message}: {why}"
        assert stack["proxy"].refused > 0, "the server never answered 500"
        assert any("500 Internal Server Error while trying to follow the runs" in m for m in run_log(api, done.id))
        assert {r.state.type.value for r in table_runs(api, everything.created)} == {"COMPLETED"}
        exact(source, warehouse)
        with warehouse.connect() as conn:  # every worker with a limit takes some of the tables
            runners = conn.execute(
                sa.text("SELECT DISTINCT runner FROM _pipeline_runs WHERE finished_at > :t"), {"t": rerun_at}
            )
            assert {r for (r,) in runners} == {survivor, "w3"}
        assert hook.received == [], [a["title"] for a in hook.received]  # no alert: no table failed
        assert connections["warehouse"] <= CONCURRENCY * PER_RUN + 1, connections
        assert connections["*"] < 50, connections
        assert staging_tables(warehouse) == []
        assert flow_runs(api, states=["RUNNING", "PENDING"]) == []
        checked = check(stack, api)
        assert checked.returncode == 0 and "not in the warehouse" not in checked.stderr, checked.stderr

        # nowhere did PostgreSQL refuse a connection
        logs = [stack["logs"] / f for f in ("server.log", "w1.log", "w2.log", "w3.log")]
        for log in [*logs, stack["cluster"]["log"]]:
            assert "too many clients" not in open(log, errors="replace").read(), log
    hook.close()


def check(stack: dict, api: str) -> subprocess.CompletedProcess:
    "`python -m my_package check` on the team's project, asking its Prefect server too."
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "MY_PACKAGE_SETTINGS": str(stack["project"] / "settings.ini"),
        "MY_PACKAGE_PROFILE": "pgwh",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "my_package", "check"], capture_output=True, text=True, timeout=300, env=env
    )


def test_a_full_postgresql_is_waited_out_and_a_lasting_refusal_is_one_line(tmp_path, demo_source, monkeypatch, caplog):
    from conftest import load

    cluster = start_cluster("kit-Full-pw-31", max_connections=5)
    held: list[psycopg.Connection] = []
    try:
        url = f"postgresql+psycopg://postgres:kit-Full-pw-31@127.0.0.1:{cluster['port']}/postgres"
        settings = tmp_path / "settings.ini"
        settings.write_text(
            f"[profile:default]\nsource = sqlite:///{demo_source}\nwarehouse = {url}\n"
            "[table:airlines]\nsource_table = airlines\nprimary_key = carrier\n"
        )
        monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))

        def take_every_slot() -> None:
            while True:
                try:
                    held.append(psycopg.connect(url.replace("+psycopg", ""), autocommit=True))
                except psycopg.OperationalError as e:
                    assert "too many clients" in str(e)
                    return

        take_every_slot()
        threading.Timer(3, lambda: [held.pop().close() for _ in range(2)]).start()  # two slots free after 3 s (a
        # load holds two connections at once: its lock's, and its COPY's or a statement's)
        started = time.monotonic()
        with caplog.at_level("WARNING", logger="my_package"):
            assert load("airlines") == 16
        assert time.monotonic() - started >= 3
        assert "refused a connection (sorry, too many clients already); trying again in 1 s." in caplog.text
        assert "kit-Full-pw-31" not in caplog.text

        make_engine(url).dispose()  # the load's own connections go back to the server
        take_every_slot()
        monkeypatch.setattr("my_package.common.warehouses.postgresql.CONNECT_PATIENCE", 3)
        with pytest.raises(DatabaseUnavailableError) as refused:
            load("airlines")
        message = str(refused.value)
        assert "\n" not in message and "kit-Full-pw-31" not in message
        assert message.startswith("The database postgresql+psycopg://postgres:***@127.0.0.1:")
        assert "refused connections for 3 s" in message and "too many clients" in message
        assert "lower [deployments] concurrency (runs at once) or raise the server's max_connections" in message
    finally:
        for conn in held:
            conn.close()
        stop_cluster(cluster)


def test_check_lists_a_deployed_run_left_running(cli, prefect_server, tmp_path, demo_source):
    "A run whose worker died after the kit's own mark was cleared, and that nothing marked Crashed: check says so."
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Crashed, Running

    from my_package.commands.diagnose import left_running
    from my_package.registry.settings import load_settings

    settings = tmp_path / "settings.ini"  # a table no other test registers: the session's server is shared
    settings.write_text(
        f"[profile:default]\nsource = sqlite:///{demo_source}\nwarehouse = sqlite:///{tmp_path / 'w.db'}\n"
        "[table:left_behind]\nsource_table = airlines\nprimary_key = carrier\n"
    )
    api = prefect_server["api"]
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        deployment = client.create_deployment(client.create_flow_from_name("ingest-left_behind"), "ingest-left_behind")
        run = client.create_flow_run_from_deployment(deployment)
        client.set_flow_run_state(run.id, Running(), force=True)  # and then nothing more: no heartbeat, no end
        try:
            # twice crash_after (90 s) from now, with no sign of life: what `check` would list then
            later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=181)
            [line] = left_running(load_settings(settings), api, now=later)
            assert line.startswith(f"table left_behind: its deployed run {run.name} ({run.id}) is still RUNNING")
            assert "nothing marked it Crashed: `python -m my_package deploy` installs the automation" in line
            assert left_running(load_settings(settings), api) == []  # silent for seconds only: not yet
            soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=170)
            assert left_running(load_settings(settings), api, now=soon) == []
            checked = cli("check", settings=settings)  # the command asks the server (no run is silent long enough)
            assert checked.returncode == 0 and "did not answer" not in checked.stderr, checked.stderr
            client.set_flow_run_state(run.id, Crashed(message="marked by hand"), force=True)
            assert left_running(load_settings(settings), api, now=later) == []
        finally:
            client.set_flow_run_state(run.id, Crashed(message="marked by hand"), force=True)
