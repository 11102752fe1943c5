"""Benchmark: start-up of the command line. `python -m my_package tables` must answer in under 2 s (median).

Run: make bench   (or .venv/bin/python bench/bench_cli.py [--runs 9])
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=9)
    args = p.parse_args()
    env = {**os.environ, "MY_PACKAGE_SETTINGS": str(ROOT / "settings.ini")}
    for command in (["tables"], ["--help"], ["deployments", "--check"]):
        seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "my_package", *command], env=env, check=True, capture_output=True)
            seconds.append(time.perf_counter() - start)
        print(
            f"python -m my_package {' '.join(command):20} median {statistics.median(seconds):.2f} s "
            f"(min {min(seconds):.2f}, max {max(seconds):.2f}, {args.runs} runs)"
        )


if __name__ == "__main__":
    main()
