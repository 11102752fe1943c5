"""Benchmark: the derived table carrier_monthly_delays built as SQL inside the warehouse, against the pandas version.

  sql     the registered transform: its notebook's function returns a SQLAlchemy query, and the warehouse runs it
          into the staging table (INSERT ... SELECT / CREATE TABLE ... AS): no row passes through Python
  pandas  the version the kit had before: the same query read into a pandas DataFrame (pd.read_sql), then written
          back through the Arrow batch path
Both then take the same key check and atomic publish. Warehouses: SQLite, and PostgreSQL (a throwaway cluster),
each holding the demo's flights and airlines. Medians of --runs runs after a warm-up; the two tables are compared.

Run: make bench   (or .venv/bin/python bench/bench_transforms.py [--runs 5])
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
sys.path.insert(0, str(Path(__file__).parent))


def pandas_version(warehouse):
    "carrier_monthly_delays through pandas: the query's rows read into a DataFrame, to be written back."
    import pandas as pd

    from my_package.transforms.carrier_monthly_delays import carrier_monthly_delays

    with warehouse.connect() as conn:
        return pd.read_sql(carrier_monthly_delays(warehouse), conn)


SECTIONS = """
[transform:carrier_monthly_delays]
inputs = flights, airlines
function = my_package.transforms.carrier_monthly_delays:carrier_monthly_delays
primary_key = carrier, year, month

[transform:carrier_monthly_delays_pandas]
inputs = flights, airlines
function = bench_transforms:pandas_version
primary_key = carrier, year, month
"""


def build(name: str) -> float:
    "Stage, check and publish the transform `name` as its flow does (without Prefect's API); return the seconds."
    from my_package.common.runs import resolve_run
    from my_package.tasks.build import build_transform
    from my_package.tasks.load import load_table_atomically
    from my_package.tasks.verify import check_staged_table

    start = time.perf_counter()
    run = resolve_run(name)
    staged = build_transform.fn(run)
    check_staged_table.fn(run, staged)
    load_table_atomically.fn(run, staged)
    return time.perf_counter() - start


def bench(label: str, source: str, warehouse: str, runs: int, base: Path) -> None:
    "Load flights and airlines into `warehouse`, then time both versions and compare their tables."
    import pandas as pd

    from my_package.common.db import make_engine
    from my_package.dev.demo import example_settings

    settings = base / f"{label}.ini"
    settings.write_text(example_settings(("airlines", "flights"), source, warehouse) + SECTIONS)
    os.environ["MY_PACKAGE_SETTINGS"] = str(settings)
    from my_package.common.runs import resolve_run
    from my_package.tasks.extract import extract_table
    from my_package.tasks.load import load_table_atomically
    from my_package.tasks.verify import check_staged_table

    for table in ("airlines", "flights"):
        run = resolve_run(table)
        staged = extract_table.fn(run)
        check_staged_table.fn(run, staged)
        load_table_atomically.fn(run, staged)
    seconds = {}
    for name in ("carrier_monthly_delays", "carrier_monthly_delays_pandas"):
        build(name)  # warm-up
        seconds[name] = statistics.median(build(name) for _ in range(runs))
    engine = make_engine(warehouse)
    tables = [
        pd.read_sql(f"SELECT * FROM {t} ORDER BY carrier, year, month", engine).astype({"flights": "int64"})
        for t in seconds
    ]
    pd.testing.assert_frame_equal(*tables, check_dtype=False)
    sql_s, pandas_s = seconds.values()
    print(
        f"{label:10} carrier_monthly_delays ({len(tables[0])} rows, equal): SQL in the warehouse {sql_s:.3f} s, "
        f"pandas {pandas_s:.3f} s: pandas/SQL = {pandas_s / sql_s:.2f}x",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    from pg_cluster import throwaway_cluster

    from my_package.dev.demo import build_demo_source

    base = Path(tempfile.mkdtemp(prefix="kit-bench-transforms-"))
    source = f"sqlite:///{base / 'source.db'}"
    build_demo_source(source, tables=("airlines", "flights"))
    bench("SQLite", source, f"sqlite:///{base / 'warehouse.db'}", args.runs, base)
    with throwaway_cluster("bench-pw", fast=False) as pg:
        import sqlalchemy as sa

        with sa.create_engine(pg["admin_url"], isolation_level="AUTOCOMMIT").connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE bench_transforms")
        warehouse = sa.make_url(pg["admin_url"]).set(database="bench_transforms").render_as_string(hide_password=False)
        bench("PostgreSQL", source, warehouse, args.runs, base)


if __name__ == "__main__":
    main()
