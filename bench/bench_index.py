"""Benchmark: write the index (lineage drawn, history, freshness) for a registry of 50 tables and 10 transforms.

The tables have run (each has a row in the run log, so every node carries its figures), half of them twice; the
figure is the time `write_index` takes, median of --runs, in this process after one warm-up (imports excluded).

Run: make bench   (or .venv/bin/python bench/bench_index.py [--tables 50] [--transforms 10] [--runs 5])
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


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


if __name__ == "__main__":
    main()
