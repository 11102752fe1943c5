"""Benchmark: rendering a table's report through the kit vs plain papermill from the command line.

For the flights table of the demo (loaded into a throwaway SQLite warehouse first), in one run:
  kit        my_package.common.reports.render_report: checks, papermill execution, HTML without code
  papermill  `papermill table_report.ipynb out.ipynb -p table flights -k python3` (execution only)
  floor      papermill.execute_notebook of an empty notebook in this process (the kernel's start and stop)
and, for all five demo tables, rendering one after the other vs the render-reports flow (2 threads, warm API).

Then, as a user types it with the project's server and runner up (`server start`): `report --all --force` over 30
registered tables (copies of the demo's small tables), through the runner (each report on a kernel the runner forks)
vs by itself (MY_PACKAGE_RUNNER names no runner; each kernel a fresh process); the goal is under 40 s through the
runner.

Run: make bench   (or .venv/bin/python bench/bench_reports.py [--runs 3] [--runner-only])
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


SMALL = ("airlines", "airports", "planes")
BY_ITSELF = {"MY_PACKAGE_RUNNER": "/nonexistent/runner.sock"}  # names no runner: a command runs by itself


def typed(project: Path, *args: str, env: dict[str, str] | None = None) -> float:
    "Seconds that `python -m my_package ARGS` takes in `project`, as a user's shell runs it; fail loudly when it fails."
    shell = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MY_PACKAGE_"))}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "my_package", *args], cwd=project, env={**shell, **(env or {})}, capture_output=True
    )
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"`{' '.join(args)}` failed in {project}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return took


def thirty_tables(base: Path) -> Path:
    "A project registering 30 small tables (copies of airlines, airports and planes under new names)."
    import sqlite3

    from my_package.dev.demo import DEMO_KEYS, example_settings, write_example_project

    write_example_project(base, SMALL)
    names = [(f"small_{i:02d}", SMALL[i % len(SMALL)]) for i in range(30)]
    with sqlite3.connect(base / "data" / "source.db") as conn:
        for name, like in names:
            conn.execute(f"CREATE TABLE {name} AS SELECT * FROM {like}")
    text = example_settings((), "sqlite:///data/source.db", "sqlite:///data/warehouse.db")
    text += "".join(f"\n[table:{n}]\nsource_table = {n}\nprimary_key = {DEMO_KEYS[like]}\n" for n, like in names)
    (base / "settings.ini").write_text(text)
    return base


def report_all_through_the_runner(base: Path) -> None:
    "`report --all --force` over 30 tables, through the project's runner and by itself (server up)."
    project = thirty_tables(base / "thirty")
    typed(project, "server", "start")
    try:
        typed(project, "run", "--all", "--no-reports")
        served = typed(project, "report", "--all", "--force")
        alone = typed(project, "report", "--all", "--force", env=BY_ITSELF)
    finally:
        typed(project, "server", "stop")
    print("report --all --force over 30 tables, the project's server up:")
    print(f"  through the project's runner (goal < 40 s):   {served:6.2f} s")
    print(f"  by itself (a fresh kernel per report):        {alone:6.2f} s  ({alone / served:.2f}x)")


def timed(fn) -> float:
    "Seconds that `fn()` takes."
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is shown")
    p.add_argument("--runner-only", action="store_true", help="only `report --all` through the runner and by itself")
    args = p.parse_args()
    if args.runner_only:
        report_all_through_the_runner(Path(tempfile.mkdtemp(prefix="kit-bench-reports-")))
        return
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
    report_all_through_the_runner(base)


if __name__ == "__main__":
    main()
