"""Benchmark: write the index (lineage drawn, history, freshness) for a registry of 50 tables and 10 transforms.

The tables have run (each has a row in the run log, so every node carries its figures), half of them twice; the
figure is the time `write_index` takes, median of --runs, in this process after one warm-up (imports excluded).

A second figure is what the index costs a command that writes it after its runs, in a fresh process: a process
that reads the settings and writes the index of 5 tables, beside one that only reads the settings (imports
included, as `run` pays them). With the project's local server up, `run` hands the index to the process that
renders its reports, so this cost is not in its time.

Run: make bench   (or .venv/bin/python bench/bench_index.py [--tables 50] [--transforms 10] [--runs 5])
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

FRESH = """import sys
from my_package.common.db import make_engine
from my_package.registry.settings import load_settings
settings = load_settings(sys.argv[1])
warehouse = make_engine(settings.profile().warehouse)
if sys.argv[2] == "write":
    from my_package.reporting.index import write_index
    write_index(settings, warehouse, "default")
"""


def fresh_seconds(settings: str, what: str, runs: int) -> float:
    "The median wall time of a fresh process that reads `settings` and (`what` = write) writes the index."
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", FRESH, settings, what], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", type=int, default=50)
    p.add_argument("--transforms", type=int, default=10)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    from my_package.common.bookkeeping import record_run
    from my_package.common.db import make_engine
    from my_package.common.runs import RunOutcome
    from my_package.dev.demo import write_large_registry
    from my_package.registry.settings import load_settings
    from my_package.reporting.index import write_index

    with tempfile.TemporaryDirectory() as directory:
        settings = load_settings(write_large_registry(directory, args.tables, args.transforms))
        warehouse = make_engine(settings.profile().warehouse)
        for i, name in enumerate([*settings.tables, *settings.transforms]):
            for attempt in range(1 + i % 2):
                record_run(warehouse, RunOutcome(name, rows=1000 * (i + attempt), seconds=0.5 + attempt))
        write_index(settings, warehouse, "default")  # warm-up: imports, matplotlib's fonts
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            page = write_index(settings, warehouse, "default")
            times.append(time.perf_counter() - start)
        size = page.stat().st_size
    print(
        f"index of {args.tables} tables and {args.transforms} transforms: {statistics.median(times):.2f} s "
        f"(median of {args.runs}; min {min(times):.2f} s, max {max(times):.2f} s), page {size / 1024:.0f} KB"
    )
    with tempfile.TemporaryDirectory() as directory:
        from my_package.dev.demo import write_example_project

        settings = write_example_project(directory, ("airlines", "planes", "weather", "airports", "flights"))
        warehouse = make_engine(load_settings(settings).profile().warehouse)
        for name in ("airlines", "planes", "weather", "airports", "flights"):
            record_run(warehouse, RunOutcome(name, rows=1000, seconds=0.5))
        only, written = (fresh_seconds(str(settings), what, args.runs) for what in ("read", "write"))
    print(
        f"a fresh process, 5 tables: settings read {only:.2f} s, and the index written {written:.2f} s "
        f"(+{written - only:.2f} s, {written / only:.1f}x; medians of {args.runs})"
    )


if __name__ == "__main__":
    main()
