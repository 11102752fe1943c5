"""Benchmark: a team's production, as the README's "Deploying" sets it up, on one machine (127.0.0.1).

One PostgreSQL (max_connections 50) holds both the Prefect server's database and the warehouse; the server runs
on it; `make deploy` deploys 35 tables (the demo's five and 30 copies) with the committed `[deployments]`
defaults (the pool runs 8 flows at once, each worker 4); the workers (`prefect worker start --limit 4`, from this
environment) run `ingest-all` with profile `pgwh` (MY_PACKAGE_PROFILE). For 1, 2 and 3 workers: the wall time of
`ingest-all`, the peak number of connections (pg_stat_activity, sampled every 0.2 s) to the warehouse, to the
server's database and in all, and how many tables each worker took. Then again with three workers, one SIGKILLed
while it loads a table: how long `ingest-all` takes to end after the kill and what it names, whether a staging
table is left, and whether a rerun makes every table exact with no run left RUNNING or PENDING. On 2 cores the
times say nothing of speed-up (the runs share the cores): they show what holds and what breaks. The table flows'
own report step is off (`[reports] in_flows = false`).

Run: make bench   (or .venv/bin/python bench/bench_team.py [--copies 30])
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import sqlalchemy as sa  # noqa: E402
from prefect_stack import (  # noqa: E402
    ConnectionPeaks,
    copies,
    flow_runs,
    start_runs,
    stop,
    team_stack,
    wait_for_run,
    worker_of,
)


def rows(engine: sa.Engine, table: str) -> list[tuple]:
    "Every row of `table` as text, sorted: the same rows compare equal across SQLite and PostgreSQL."
    with engine.connect() as conn:
        found = conn.execute(sa.select(sa.Table(table, sa.MetaData(), autoload_with=conn))).fetchall()
    return sorted(tuple("" if v is None else str(v) for v in row) for row in found)


def inexact(source: sa.Engine, warehouse: sa.Engine, tables: dict[str, str]) -> list[str]:
    "The tables whose rows differ from the source table each copies (or that are missing)."
    present = set(sa.inspect(warehouse).get_table_names())
    return [n for n, copied in tables.items() if n not in present or rows(warehouse, n) != rows(source, copied)]


def taken(warehouse: sa.Engine, since: float) -> dict[str, int]:
    "How many table runs each worker recorded (the run log's runner) since the epoch second `since`."
    with warehouse.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT runner, count(*) FROM _pipeline_runs WHERE finished_at >= to_timestamp(%s) GROUP BY runner "
            "ORDER BY runner",
            (since,),
        ).fetchall()
    return dict(found)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--copies", type=int, default=30, help="copies of the demo tables beside the five (default 30)")
    args = p.parse_args()
    from my_package.dev.demo import build_demo_source
    from my_package.registry.settings import load_settings

    base = Path(tempfile.mkdtemp(prefix="kit-bench-team-"))
    build_demo_source(f"sqlite:///{base / 'source.db'}")
    tables, prefect = copies(args.copies), Path(sys.executable).parent / "prefect"
    limits = load_settings(ROOT / "settings.ini").deployments  # the committed defaults
    with team_stack(base / "stack", base / "source.db", tables, prefect) as stack:
        api, workers = stack["api"], stack["workers"]
        source, warehouse = sa.create_engine(f"sqlite:///{base / 'source.db'}"), sa.create_engine(stack["warehouse"])
        bound = limits.concurrency * 3 + 1
        print(
            f"{len(tables)} tables; the pool runs {limits.concurrency} flows at once, each worker {limits.worker_limit}; "
            f"PostgreSQL max_connections 50; the README's bound on the warehouse's connections: {bound}"
        )
        print(f"{'workers':>7}  {'ingest-all':>10}  {'warehouse':>9}  {'server db':>9}  {'all':>4}  tables per worker")
        for count in (1, 2, 3):
            for name in list(workers):
                stop(workers.pop(name))
            for i in range(1, count + 1):
                stack["start"](f"b{count}{i}", limits.worker_limit)
            peaks, since, started = ConnectionPeaks(stack["cluster"]["admin_url"]), time.time(), time.perf_counter()
            [everything] = start_runs(api, ["ingest-all"])
            done = wait_for_run(api, everything.id, 3600)
            seconds, connections = time.perf_counter() - started, peaks.stop()
            assert done.state.type.value == "COMPLETED", done.state.message
            print(
                f"{count:>7}  {seconds:>8.0f} s  {connections.get('warehouse', 0):>9}  "
                f"{connections.get('prefect', 0):>9}  {connections['*']:>4}  {taken(warehouse, since)}"
            )
        wrong = inexact(source, warehouse, tables)
        print(f"every table exact after the runs: {'yes' if not wrong else 'NO: ' + ', '.join(wrong)}")

        # three workers; the one that does not run ingest-all SIGKILLed while it loads a table
        [everything] = start_runs(api, ["ingest-all"])
        while not worker_of(workers, everything.id):
            time.sleep(0.5)
        victim = next(n for n in workers if n != worker_of(workers, everything.id))
        while True:
            if not sa.inspect(warehouse).has_table("_pipeline_loading"):
                time.sleep(0.05)
                continue
            with warehouse.connect() as conn:
                marks = [
                    t
                    for (t,) in conn.exec_driver_sql(
                        f"SELECT table_name FROM _pipeline_loading WHERE runner = '{victim}'"
                    )
                ]
            if any(f"_staging_{t}" in sa.inspect(warehouse).get_table_names() for t in marks):
                break
            time.sleep(0.05)
        os.kill(workers[victim].pid, signal.SIGKILL)
        killed = time.perf_counter()
        done = wait_for_run(api, everything.id, 3600)
        left = [t for t in sa.inspect(warehouse).get_table_names() if t.startswith("_staging_")]
        print(
            f"{victim} SIGKILLed while loading {', '.join(marks)}: ingest-all ended {done.state.type.value} "
            f"{time.perf_counter() - killed:.0f} s later ({done.state.message}); staging tables left: {left or 'none'}"
        )
        started = time.perf_counter()
        [everything] = start_runs(api, ["ingest-all"])
        done = wait_for_run(api, everything.id, 3600)
        seconds = time.perf_counter() - started
        wrong, stuck = inexact(source, warehouse, tables), flow_runs(api, states=["RUNNING", "PENDING"])
        print(
            f"rerun on the two workers left: {done.state.type.value} in {seconds:.0f} s; "
            f"every table exact: {'yes' if not wrong else 'NO: ' + ', '.join(wrong)}; "
            f"runs left RUNNING or PENDING: {len(stuck)}"
        )
        logs = [stack["logs"] / "server.log", *stack["logs"].glob("b*.log"), Path(stack["cluster"]["log"])]
        refused = [log.name for log in logs if "too many clients" in log.read_text(errors="replace")]
        print(f"'too many clients' in the server's, the workers' or PostgreSQL's log: {refused or 'nowhere'}")


if __name__ == "__main__":
    main()
