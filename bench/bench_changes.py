"""Benchmark: what computing "what changed since the previous run" costs at publish time, against the load itself.

For each warehouse (SQLite, DuckDB, PostgreSQL) and table (flights, 336,776 rows; the synthetic 2M and 8M-row
tables `bench/bench_loads.py` builds), the table is loaded once (the previous run), then again: its staging is
built and checked as a run does, `compare_by_key` (rows added, removed, changed per column, examples) is timed
alone on the staged and the live table, and the load's publish (which includes it) completes the run. The load's
seconds are stage + checks + publish without the comparison (as `[pipeline] changes = off` runs it); the share
is what the comparison adds to it.

Run: .venv/bin/python bench/bench_changes.py [--sizes 1,4] [--backends sqlite,duckdb,postgresql]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))


def measure(source: str, warehouse: str, table: str, workdir: Path) -> dict:
    "Load `table` twice through the kit's steps; time the second load and the comparison inside it."
    from bench_loads import settings_text

    from my_package.common.db import make_engine
    from my_package.common.loads import compare_by_key
    from my_package.common.runs import resolve_run
    from my_package.registry.settings import load_settings
    from my_package.tasks.extract import extract_table
    from my_package.tasks.load import load_table_atomically
    from my_package.tasks.verify import check_staged_table

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "settings.ini").write_text(settings_text(source, warehouse, table, 50_000))
    os.environ["MY_PACKAGE_SETTINGS"] = str(workdir / "settings.ini")
    run = resolve_run(table, settings=load_settings(workdir / "settings.ini"))
    for attempt in range(2):
        started = time.perf_counter()
        staged = extract_table.fn(run)
        check_staged_table.fn(run, staged)
        if attempt:
            with make_engine(warehouse).connect() as conn:
                at = time.perf_counter()
                found = compare_by_key(conn, staged.staging, table, run.spec.primary_key)
                compare = time.perf_counter() - at
        rows = load_table_atomically.fn(run, staged)  # its publish compares again: the run's own comparison
        load = time.perf_counter() - started - (compare if attempt else 0)
    # the load without its comparison, as `[pipeline] changes = off` runs it: what the comparison adds to
    return {"table": table, "rows": rows, "load": load - compare, "compare": compare, "words": found.words()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1,4", help="synthetic table growth factors (1: 2M rows, 4: 8M rows)")
    p.add_argument("--backends", default="sqlite,duckdb,postgresql")
    args = p.parse_args()
    from bench_loads import prepare_postgres, prepare_sqlite
    from pg_cluster import throwaway_cluster

    sizes = [int(s) for s in args.sizes.split(",") if s]
    base = Path(tempfile.mkdtemp(prefix="kit-bench-changes-"))
    print(f"Preparing data in {base} (flights and synthetic tables {sizes}x) ...", flush=True)
    source = prepare_sqlite(base, sizes)
    tables = ["flights", *[f"synth_{k}x" for k in sizes]]
    rows = []

    def bench(name: str, source: str, warehouse: str) -> None:
        for table in tables:
            found = measure(source, warehouse, table, base / name / table)
            rows.append((name, found))
            print(
                f"  {name:<10} {found['table']:<9} {found['rows']:>10,} rows  load {found['load']:6.2f} s  "
                f"compare {found['compare']:6.2f} s  ({found['compare'] / found['load']:.0%} of the load without it)",
                flush=True,
            )

    if "sqlite" in args.backends:
        bench("SQLite", source, f"sqlite:///{base / 'warehouse.db'}")
    if "duckdb" in args.backends:
        bench("DuckDB", source, f"duckdb:///{base / 'warehouse.duckdb'}")
    if "postgresql" in args.backends:
        with throwaway_cluster("bench-pw", fast=False) as pg:
            pg_source, pg_warehouse = prepare_postgres(pg["admin_url"], source, sizes)
            bench("PostgreSQL", pg_source, pg_warehouse)
    print("\nWhat changed, computed at publish time (an unchanged rerun: +0 -0 ~0), against the load without it:")
    print(f"  {'warehouse':<10} {'table':<9} {'rows':>10}  {'load s':>7} {'compare s':>9} {'share':>6}")
    for name, found in rows:
        share = found["compare"] / found["load"]
        print(
            f"  {name:<10} {found['table']:<9} {found['rows']:>10,}  {found['load']:7.2f} "
            f"{found['compare']:9.2f} {share:6.0%}"
        )
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
