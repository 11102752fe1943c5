"""Benchmark: what reconciling an incremental load with its source costs, as a share of the load.

After each incremental load the kit compares the rows the table will hold with the source's count (the check
`rows match the source`): the source is counted on a thread while the load reads its rows (a database source),
then the check adds the staged rows whose key is new to the live rows the last load recorded. Here, on the
synthetic table of bench_loads.py (flights grown 6x: 2,020,656 rows, keyed on `id`, with an indexed
`updated_at`): a first incremental load (everything), then --runs pairs of refreshes, each after 1% of the rows
changed (a value and their `updated_at`): one as the kit runs it, one with the reconcile switched off (no count
alongside, no check), in turns. Each refresh is timed as the flow runs its steps (extract -> check -> load,
called directly, no Prefect); also the check's own part of the reconcile. Backends: SQLite -> SQLite, SQLite ->
DuckDB, PostgreSQL -> PostgreSQL (a throwaway cluster with durable settings, fsync on). Medians.

Run: .venv/bin/python bench/bench_incremental.py [--runs 3] [--backends sqlite,duckdb,postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))
TABLE = "synth_1x"


class NoCount:
    "CountAlongside switched off: no count of the source while the rows are read."

    count = None

    def __init__(self, *args):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *error):
        pass


def refresh(table: str, reconcile: bool = True) -> tuple[int, float, float, str | None]:
    "One incremental load of `table` as its flow runs it: rows staged, seconds in all, seconds in the check, verdict."
    import my_package.common.sources.database as database
    import my_package.tasks.verify as checks
    from my_package.common.runs import resolve_run
    from my_package.tasks.extract import extract_table
    from my_package.tasks.load import load_table_atomically

    spent, real = [], checks.reconciled

    def timed(run, staged):
        start = time.perf_counter()
        try:
            return real(run, staged)
        finally:
            spent.append(time.perf_counter() - start)

    counter = database.CountAlongside
    checks.reconciled = timed if reconcile else (lambda run, staged: None)
    database.CountAlongside = counter if reconcile else NoCount
    try:
        start = time.perf_counter()
        run = resolve_run(table)
        staged = extract_table.fn(run)
        results = checks.check_staged_table.fn(run, staged)
        load_table_atomically.fn(run, staged)
        seconds = time.perf_counter() - start
    finally:
        checks.reconciled, database.CountAlongside = real, counter
    verdict = next((r.status for r in results if r.check == "rows match the source"), None)
    return staged.rows, seconds, sum(spent), verdict


DAYS = itertools.count(1)  # each change moves the rows past every watermark so far (the source serves every backend)


def change_one_percent(source: str, table: str) -> int:
    "Move 1% of the rows of `table` on (a value and their updated_at, past every watermark so far); how many."
    import sqlalchemy as sa

    later = (dt.date(2024, 6, 1) + dt.timedelta(days=next(DAYS))).isoformat()
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        changed = conn.execute(
            sa.text(
                f"UPDATE {table} SET dep_delay = coalesce(dep_delay, 0) + 1, updated_at = :later WHERE id % 100 = 7"
            ),
            {"later": f"{later} 00:00:00.000000" if source.startswith("sqlite") else later},
        ).rowcount
    engine.dispose()
    return changed


def bench_backend(name: str, source: str, warehouse: str, runs: int, workdir: Path) -> dict:
    "The first load and `runs` refreshes of the synthetic table on one backend pair; their figures."
    from bench_loads import settings_text

    (workdir / "settings.ini").write_text(settings_text(source, warehouse, TABLE, 50_000, incremental=True))
    os.environ["MY_PACKAGE_SETTINGS"] = str(workdir / "settings.ini")
    rows, first, _, _ = refresh(TABLE)
    print(f"  {name:26} first load {rows:,} rows {first:.2f} s", flush=True)
    found = {True: [], False: []}
    for _ in range(runs):
        for reconcile in (True, False):
            changed = change_one_percent(source, TABLE)
            staged, seconds, checked, verdict = refresh(TABLE, reconcile)
            assert staged == changed and verdict == ("PASS" if reconcile else None), (staged, changed, verdict)
            found[reconcile].append((seconds, checked))
            said = f"reconciled (its check {checked:.3f} s)" if reconcile else "not reconciled"
            print(f"  {name:26} refresh of {changed:,} rows {seconds:.2f} s, {said}", flush=True)
    median = lambda runs, i: statistics.median(r[i] for r in runs)  # noqa: E731
    return {
        "backend": name,
        "rows": rows,
        "changed": changed,
        "with": median(found[True], 0),
        "without": median(found[False], 0),
        "check": median(found[True], 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="pairs of refreshes per backend; medians are shown (default 3)")
    p.add_argument("--backends", default="sqlite,duckdb,postgresql")
    args = p.parse_args()
    from bench_loads import prepare_postgres, prepare_sqlite
    from pg_cluster import throwaway_cluster

    base = Path(tempfile.mkdtemp(prefix="kit-bench-incremental-"))
    print(f"Preparing the synthetic table in {base} ...", flush=True)
    sqlite_source, results = prepare_sqlite(base, [1]), []
    try:
        if "sqlite" in args.backends:
            wh = f"sqlite:///{base / 'warehouse.db'}"
            results.append(bench_backend("SQLite -> SQLite", sqlite_source, wh, args.runs, base))
        if "duckdb" in args.backends:
            wh = f"duckdb:///{base / 'warehouse.duckdb'}"
            results.append(bench_backend("SQLite -> DuckDB", sqlite_source, wh, args.runs, base))
        if "postgresql" in args.backends:
            with throwaway_cluster("bench-pw", fast=False) as pg:
                source, warehouse = prepare_postgres(pg["admin_url"], sqlite_source, [1])
                results.append(bench_backend("PostgreSQL -> PostgreSQL", source, warehouse, args.runs, base))
                from my_package.common.db import make_engine

                make_engine.cache_clear()  # the cluster goes: no pooled connection may outlive it
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(
        "\n| backend | rows | changed | refresh, not reconciled s | refresh, reconciled s | with / without | its check s |"
        "\n|---|---:|---:|---:|---:|---:|---:|"
    )
    for r in results:
        print(
            f"| {r['backend']} | {r['rows']:,} | {r['changed']:,} | {r['without']:.2f} | {r['with']:.2f} | "
            f"{r['with'] / r['without']:.2f}x | {r['check']:.3f} |"
        )


if __name__ == "__main__":
    main()
