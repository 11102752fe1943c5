"""Benchmark: start-up of the command line, and a load through the project's runner.

  start-up     `python -m my_package tables` must answer in under 2 s (median), by itself
  the runner   `run flights --no-reports` from PostgreSQL into PostgreSQL (336,776 rows) with the project's server
               and runner up (`server start`), vs the same command by itself (MY_PACKAGE_RUNNER names no runner);
               the goal is at most 1.5 s through the runner (ingestr's Go binary: 1.17 s on the same machine),
               beside the database's own work for the same guarantees: the statements the load sends, by
               themselves from one warm psycopg connection (the piped binary COPY, the key's constraint, the
               comparison with the previous table by key), each timed

Run: make bench   (or .venv/bin/python bench/bench_cli.py [--runs 9] [--load-runs 3] [--no-load])
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
BY_ITSELF = {"MY_PACKAGE_RUNNER": "/nonexistent/runner.sock"}  # names no runner: a command runs by itself


def typed(project: Path, *args: str, env: dict[str, str] | None = None) -> float:
    "Seconds that `python -m my_package ARGS` takes in `project`, as a user's shell runs it; fail loudly when it fails."
    shell = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MY_PACKAGE_"))}
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "my_package", *args],
        cwd=project,
        env={**shell, **(env or {})},
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"`{' '.join(args)}` failed in {project}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return took


def figures(label: str, seconds: list[float]) -> str:
    "One row: the median, then every figure."
    return f"  {label:58} {statistics.median(seconds):6.2f} s  ({', '.join(f'{s:.2f}' for s in seconds)})"


KEY = ("year", "month", "day", "hour", "minute", "carrier", "flight", "origin")  # flights' key in the demo


def statements_alone(url: str) -> dict[str, float]:
    "Seconds of each statement a keyed load of flights sends, run by themselves: the floor under the kit's load."
    import psycopg

    base = url.replace("postgresql+psycopg://", "postgresql://")
    times = {}
    with psycopg.connect(f"{base}/source") as src, psycopg.connect(f"{base}/warehouse") as wh:
        start = time.perf_counter()
        with wh.transaction():  # as the load does: create and fill in one transaction, blocks of 1 MB
            wh.execute("DROP TABLE IF EXISTS bench_alone")
            wh.execute("CREATE TABLE bench_alone (LIKE flights)")
            with (
                src.cursor().copy("COPY (SELECT * FROM flights) TO STDOUT (FORMAT BINARY)") as out,
                wh.cursor().copy("COPY bench_alone FROM STDIN (FORMAT BINARY)") as into,
            ):
                block = bytearray()
                for data in out:
                    block += data
                    if len(block) >= 1 << 20:
                        into.write(block)
                        block = bytearray()
                into.write(block)
        times["COPY"] = time.perf_counter() - start
        start = time.perf_counter()
        with wh.transaction():
            wh.execute("SET LOCAL maintenance_work_mem = '256MB'")
            wh.execute(f"ALTER TABLE bench_alone ADD PRIMARY KEY ({', '.join(KEY)})")
        times["key"] = time.perf_counter() - start
        start = time.perf_counter()
        on = " AND ".join(f"n.{k} = o.{k}" for k in KEY)
        wh.execute(f"SELECT count(*), count(o.{KEY[0]}) FROM bench_alone n LEFT JOIN flights o ON {on}").fetchone()
        wh.execute("SELECT count(*) FROM flights").fetchone()
        times["compare"] = time.perf_counter() - start
        wh.execute("DROP TABLE bench_alone")
        wh.commit()
    return times


def postgres_flights(runs: int) -> None:
    "`run flights` PostgreSQL -> PostgreSQL through the project's runner and by itself, in turn."
    import sqlalchemy as sa
    from pg_cluster import throwaway_cluster

    from my_package.dev.demo import build_demo_source, example_settings

    base = Path(tempfile.mkdtemp(prefix="kit-bench-cli-"))
    try:
        with throwaway_cluster("bench-pw", fast=False) as pg:  # durable, as a real server runs
            admin = sa.create_engine(pg["admin_url"], isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                for name in ("source", "warehouse"):
                    conn.exec_driver_sql(f"CREATE DATABASE {name}")
            admin.dispose()
            url = pg["admin_url"].rsplit("/", 1)[0]
            build_demo_source(f"{url}/source", tables=("flights",))
            (base / "settings.ini").write_text(example_settings(("flights",), f"{url}/source", f"{url}/warehouse"))
            typed(base, "server", "start")
            try:
                typed(base, "run", "flights", "--no-reports")  # the first load creates the table
                served, alone, floor = [], [], []
                for _ in range(runs):  # in turn: a machine's pace that changes hurts both alike
                    served.append(typed(base, "run", "flights", "--no-reports"))
                    alone.append(typed(base, "run", "flights", "--no-reports", env=BY_ITSELF))
                    floor.append(statements_alone(url))
            finally:
                typed(base, "server", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("run flights --no-reports, PostgreSQL -> PostgreSQL (336,776 rows), the project's server up:")
    print(figures("through the project's runner (goal <= 1.5 s; ingestr 1.17 s)", served))
    print(figures("by itself (Python, Prefect, pandas, pyarrow started again)", alone))
    print(f"  by itself / through the runner = {statistics.median(alone) / statistics.median(served):.2f}x")
    steps = {step: statistics.median(f[step] for f in floor) for step in floor[0]}
    totals = [sum(f.values()) for f in floor]
    print(figures("its statements by themselves: " + " + ".join(steps), totals))
    print("    " + ", ".join(f"{step} {seconds:.2f} s" for step, seconds in steps.items()))
    ratio = statistics.median(served) / statistics.median(totals)
    print(f"  through the runner / the statements by themselves = {ratio:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=9)
    p.add_argument("--load-runs", type=int, default=3, help="runs of the PostgreSQL load, each way")
    p.add_argument("--no-load", action="store_true", help="only the start-up figures")
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
    if not args.no_load:
        postgres_flights(args.load_runs)


if __name__ == "__main__":
    main()
