"""Which tests spend `make test`'s CPU: sums up the lines a run with KIT_TEST_CPU=FILE wrote (tests/conftest.py).

Run `KIT_TEST_CPU=/tmp/cpu.jsonl make test`, then `.venv/bin/python tools/test_cpu.py /tmp/cpu.jsonl`.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path


def read_lines(path: Path) -> list[dict]:
    "The tests' lines of `path`, each with its CPU seconds in all (`cpu`)."
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [{**line, "cpu": line["own"] + line["children"]} for line in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path, help="the file KIT_TEST_CPU named")
    parser.add_argument("--top", type=int, default=15, help="how many tests and files to list (15)")
    args = parser.parse_args()
    lines = read_lines(args.file)
    total = sum(line["cpu"] for line in lines)
    print(f"{len(lines)} tests, {total:,.0f} CPU-s in all (a process shared by several tests is in none of them)")
    print(f"\n{'CPU-s':>7} {'share':>6} {'seconds':>8}  test")
    for line in sorted(lines, key=lambda line: -line["cpu"])[: args.top]:
        name = line["test"].removeprefix("tests/")
        name = name if len(name) <= 80 else f"{name[:44]}...{name[-33:]}"  # both ends: its file and its parameters
        print(f"{line['cpu']:7.1f} {line['cpu'] / total:6.1%} {line['seconds']:8.1f}  {name}")
    files = Counter()
    for line in lines:
        files[line["test"].split("::")[0]] += line["cpu"]
    print(f"\n{'CPU-s':>7} {'share':>6}  file")
    for name, cpu in files.most_common(args.top):
        print(f"{cpu:7.1f} {cpu / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
