"""Which tests spend `make test`'s CPU: sums up the lines a run with KIT_TEST_CPU=FILE wrote (tests/conftest.py).

Run `KIT_TEST_CPU=/tmp/cpu.jsonl make test`, then `.venv/bin/python tools/test_cpu.py /tmp/cpu.jsonl`.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

WIDTH = 80 - 26  # a test's name after its three figures, on an 80-column terminal


def read_lines(path: Path) -> list[dict]:
    "The tests' lines of `path`, each with its CPU seconds in all (`cpu`)."
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{**line, "cpu": line["own"] + line["children"]} for line in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="the file KIT_TEST_CPU named")
    parser.add_argument("--top", type=int, default=15, help="how many tests and files to list (15)")
    args = parser.parse_args()
    if not args.file.is_file():
        raise SystemExit(f"No file {args.file}: run `KIT_TEST_CPU={args.file} make test` first.")
    lines = read_lines(args.file)
    total = sum(line["cpu"] for line in lines)
    if not lines or not total:
        raise SystemExit(f"{args.file} records no test's CPU: run `KIT_TEST_CPU={args.file} make test` again.")
    print(f"{len(lines)} tests, {total:,.0f} CPU-s (a process several tests share is in none)")
    print(f"\n{'CPU-s':>7} {'share':>6} {'seconds':>8}  test")
    for line in sorted(lines, key=lambda line: -line["cpu"])[: args.top]:
        name = line["test"].removeprefix("tests/")  # 80 columns: both ends of a long name, its file and parameters
        name = name if len(name) <= WIDTH else f"{name[: WIDTH - 24]}...{name[-21:]}"
        print(f"{line['cpu']:7.1f} {line['cpu'] / total:6.1%} {line['seconds']:8.1f}  {name}")
    files = Counter()
    for line in lines:
        files[line["test"].split("::")[0]] += line["cpu"]
    print(f"\n{'CPU-s':>7} {'share':>6}  file")
    for name, cpu in files.most_common(args.top):
        print(f"{cpu:7.1f} {cpu / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
