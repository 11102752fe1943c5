"""Benchmark: rendering a table's report through the kit vs plain papermill from the command line.

For the flights table of the demo (loaded into a throwaway SQLite warehouse first), in one run:
  kit        my_package.common.reports.render_report: checks, papermill execution, HTML without code
  papermill  `papermill table_report.ipynb out.ipynb -p table flights -k python3` (execution only)
  floor      papermill.execute_notebook of an empty notebook in this process (the kernel's start and stop)
and, for all five demo tables, rendering one after the other vs the render-reports flow (2 threads, warm API).

Run: make bench   (or .venv/bin/python bench/bench_reports.py [--runs 3])
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "nbs" / "tables" / "table_report.ipynb"


def prepare(base: Path) -> Path:
    "A project with the five demo tables loaded into its warehouse; return its settings path."
    from my_package.dev.demo import DEMO_TABLES, write_example_project

    settings = write_example_project(base, DEMO_TABLES)
    os.environ["MY_PACKAGE_SETTINGS"] = str(settings)
    os.environ["MY_PACKAGE_REPORT_NOTEBOOK"] = str(TEMPLATE)
    from my_package.common.runs import resolve_run
    from my_package.tasks.extract import extract_table
    from my_package.tasks.load import load_table_atomically
    from my_package.tasks.verify import check_staged_table

    for table in DEMO_TABLES:
        run = resolve_run(table)
        staged = extract_table.fn(run)
        check_staged_table.fn(run, staged)
        load_table_atomically.fn(run, staged)
    return settings


def timed(fn) -> float:
    "Seconds that `fn()` takes."
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is shown")
    args = p.parse_args()
    from my_package.dev.server import apply_prefect_settings

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    base = Path(tempfile.mkdtemp(prefix="kit-bench-reports-"))
    apply_prefect_settings(base)
    settings_path = prepare(base)
    import nbformat
    from papermill import execute_notebook

    from my_package.common.runs import resolve_run
    from my_package.registry.settings import load_settings
    from my_package.reporting.render import render_report

    settings = load_settings(settings_path)
    papermill = [
        str(Path(sys.executable).parent / "papermill"),
        str(TEMPLATE),
        str(base / "plain.ipynb"),
        "-p",
        "table",
        "flights",
        "-k",
        "python3",
        "--cwd",
        str(base),
        "--no-progress-bar",
    ]
    kit_s = [
        timed(lambda: render_report(resolve_run("flights", settings=settings), out_dir=base / "reports"))
        for _ in range(args.runs)
    ]
    plain_s = [timed(lambda: subprocess.run(papermill, check=True, capture_output=True)) for _ in range(args.runs)]
    empty = base / "empty.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), empty)
    floor_s = [
        timed(
            lambda: execute_notebook(
                str(empty), str(base / "empty-out.ipynb"), kernel_name="python3", progress_bar=False
            )
        )
        for _ in range(args.runs)
    ]
    kit, plain, floor = statistics.median(kit_s), statistics.median(plain_s), statistics.median(floor_s)
    print(f"flights report, kit (execute + HTML):        {kit:6.2f} s  (runs: {', '.join(f'{s:.2f}' for s in kit_s)})")
    print(
        f"flights report, papermill CLI (execute only): {plain:6.2f} s  (runs: {', '.join(f'{s:.2f}' for s in plain_s)})"
    )
    print(
        f"empty notebook, papermill (kernel floor):    {floor:6.2f} s  (runs: {', '.join(f'{s:.2f}' for s in floor_s)})"
    )
    print(f"kit / papermill CLI = {kit / plain:.2f}   kit / kernel floor = {kit / floor:.2f}")

    from my_package.flows.reports import render_reports

    names = list(settings.tables)
    render_reports(tables=names[:1])  # warm-up: starts the local Prefect API
    sequential = timed(
        lambda: [render_report(resolve_run(t, settings=settings), out_dir=base / "reports") for t in names]
    )
    parallel = timed(lambda: render_reports(tables=names))
    print(f"all {len(names)} reports one after the other: {sequential:6.2f} s")
    print(
        f"all {len(names)} reports, render-reports flow (2 threads): {parallel:6.2f} s  ({sequential / parallel:.2f}x)"
    )


if __name__ == "__main__":
    main()
