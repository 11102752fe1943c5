"""Benchmark: what computing "what changed since the previous run" costs at publish time, against the load itself.

For each warehouse (SQLite, DuckDB, PostgreSQL) and table (flights, 336,776 rows; the synthetic 2M and 8M-row
tables `bench/bench_loads.py` builds), the table is loaded once (the previous run), then again: its staging is
built and checked as a run does, `compare_by_key` is timed alone on the staged and the live table in each of
`[pipeline] changes`' modes (`values`: rows added, removed, changed and each column's changed values, examples;
`counts`: rows added, removed and changed, no column's count; `rows`: rows added and removed), and the load's
publish completes the run with `changes = off`. The load's seconds are stage + checks + publish without a
comparison; each share is what a mode adds to it (the kit's default on a warehouse must add at most a third).

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
    "Load `table` twice through the kit's steps (`changes = off`); time the second load and each comparison mode."
    from bench_loads import settings_text

    from my_package.common.db import make_engine
    from my_package.common.loads import compare_by_key
    from my_package.common.runs import resolve_run
    from my_package.registry.settings import load_settings
    from my_package.tasks.extract import extract_table
    from my_package.tasks.load import load_table_atomically
    from my_package.tasks.verify import check_staged_table

    workdir.mkdir(parents=True, exist_ok=True)
    settings = settings_text(source, warehouse, table, 50_000).replace("[pipeline]\n", "[pipeline]\nchanges = off\n")
    (workdir / "settings.ini").write_text(settings)
    os.environ["MY_PACKAGE_SETTINGS"] = str(workdir / "settings.ini")
    run = resolve_run(table, settings=load_settings(workdir / "settings.ini"))
    compare, words = {}, {}
    for attempt in range(2):
        started = time.perf_counter()
        staged = extract_table.fn(run)
        check_staged_table.fn(run, staged)
        aside = time.perf_counter()
        if attempt:  # the second load compares, as a publish would, in each mode (the load's time leaves them out)
            with make_engine(warehouse).connect() as conn:
                for mode, kind in (("values", "full"), ("counts", "counts"), ("rows", "rows")):
                    at = time.perf_counter()
                    words[mode] = compare_by_key(conn, staged.staging, table, run.spec.primary_key, kind).words()
                    compare[mode] = time.perf_counter() - at
        aside = time.perf_counter() - aside
        rows = load_table_atomically.fn(run, staged)
        load = time.perf_counter() - started - aside
    return {"table": table, "rows": rows, "load": load, "compare": compare, "words": words}


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
            took = found["compare"]
            print(
                f"  {name:<10} {found['table']:<9} {found['rows']:>10,}  load {found['load']:.2f}s  "
                f"values {took['values']:.2f}s  counts {took['counts']:.2f}s  rows {took['rows']:.2f}s",
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
    print("\nWhat changed, computed at publish time (an unchanged rerun), against the load without it:")
    print(
        f"  {'warehouse':<10} {'table':<9} {'rows':>10} {'load s':>6}   {'values':>10}   {'counts':>10}   {'rows':>10}"
    )
    for name, found in rows:
        shares = "".join(f"   {s:5.2f} {s / found['load']:4.0%}" for s in found["compare"].values())
        print(f"  {name:<10} {found['table']:<9} {found['rows']:>10,} {found['load']:6.2f}{shares}")
    for _name, found in rows:  # an unchanged rerun: anything else is a wrong comparison, not a figure
        assert set(found["words"].values()) <= {
            "+0 -0 ~0",
            "+0 -0 ~?",
        }, found
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
