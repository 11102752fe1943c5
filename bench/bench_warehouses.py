"""Benchmark: the embedded warehouses side by side, SQLite and DuckDB, on the demo (to choose the default).

For each warehouse, from the same SQLite source (the demo's five nycflights13 tables):
  loads      each table's extract -> checks -> publish, as its flow runs them (without Prefect's API), and their sum
  transform  carrier_monthly_delays (its notebook's query, run inside the warehouse), built, checked, published
  queries    three questions a data scientist asks of flights (delay by carrier and month, the worst routes, the
             daily count), each read into pandas as a notebook would
  report     the flights report (the project's own notebook, papermill + HTML), rendered with --force
  file MB    the warehouse file's size
Medians of --runs runs (each from an empty warehouse); the ratio column is DuckDB / SQLite (below 1: DuckDB faster).

Run: .venv/bin/python bench/bench_warehouses.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

QUESTIONS = {
    "delay by carrier and month": (
        "SELECT carrier, month, avg(arr_delay) AS delay, count(*) AS n FROM flights GROUP BY carrier, month"
    ),
    "worst routes": (
        "SELECT origin, dest, avg(arr_delay) AS delay FROM flights WHERE arr_delay IS NOT NULL "
        "GROUP BY origin, dest HAVING count(*) > 100 ORDER BY delay DESC LIMIT 20"
    ),
    "flights per day": "SELECT year, month, day, count(*) AS n FROM flights GROUP BY year, month, day",
}


def seconds(step) -> float:
    "The wall seconds `step()` takes."
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def one_run(project: Path, profile: str) -> dict[str, float]:
    "Every figure of one run on `profile`, from an empty warehouse."
    import pandas as pd

    from my_package.common.runs import resolve_run
    from my_package.dev.demo import DEMO_TABLES
    from my_package.reporting.render import render_report
    from my_package.tasks.build import build_transform
    from my_package.tasks.extract import extract_table
    from my_package.tasks.load import load_table_atomically
    from my_package.tasks.verify import check_staged_table

    resolve_run("airlines", profile).warehouse.dispose()  # no connection of the last run to a removed file
    for leftover in (project / "data").glob("warehouse.*"):
        leftover.unlink()
    figures: dict[str, float] = {}

    def load(name: str) -> None:
        run = resolve_run(name, profile)
        staged = (build_transform if run.spec.kind == "transform" else extract_table).fn(run)
        check_staged_table.fn(run, staged)
        load_table_atomically.fn(run, staged)

    for table in DEMO_TABLES:
        figures[f"load {table}"] = seconds(lambda table=table: load(table))
    figures["loads, all five"] = sum(figures[f"load {t}"] for t in DEMO_TABLES)
    figures["transform carrier_monthly_delays"] = seconds(lambda: load("carrier_monthly_delays"))
    warehouse = resolve_run("flights", profile).warehouse
    for question, sql in QUESTIONS.items():

        def ask(sql=sql) -> None:
            with warehouse.connect() as conn:
                pd.read_sql(sql, conn)

        figures[f"query: {question}"] = min(seconds(ask) for _ in range(3))
    figures["report flights"] = seconds(lambda: render_report(resolve_run("flights", profile), force=True))
    path = next((project / "data").glob("warehouse.d*"))
    figures["file MB"] = path.stat().st_size / 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        for part in ("settings.ini", "nbs/tables", "nbs/transforms"):
            (project / part).parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if (ROOT / part).is_dir() else shutil.copy)(ROOT / part, project / part)
        os.environ["MY_PACKAGE_SETTINGS"] = str(project / "settings.ini")
        os.chdir(project)
        from my_package.dev.demo import build_demo_source

        build_demo_source(f"sqlite:///{project / 'data' / 'source.db'}")
        results = {profile: [one_run(project, profile) for _ in range(args.runs)] for profile in ("default", "duckdb")}
    names = list(results["default"][0])
    print(f"{'figure':42} {'SQLite':>9} {'DuckDB':>9} {'DuckDB/SQLite':>14}   (medians of {args.runs}, seconds)")
    for name in names:
        sqlite, duck = (statistics.median(r[name] for r in results[p]) for p in ("default", "duckdb"))
        print(f"{name:42} {sqlite:9.3f} {duck:9.3f} {duck / sqlite:13.2f}x")


if __name__ == "__main__":
    main()
