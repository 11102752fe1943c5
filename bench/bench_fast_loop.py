"""Benchmark: the loop a user feels, as the wall time of the command typed, side by side in one run.

  run airlines     `python -m my_package run airlines` with the project's local server up vs with none (Prefect
                   then starts a temporary server inside the command); the goal is under 3 s with the server up
  run flights      the same command for flights (336,776 rows) vs SQLite copying the table by itself
  run --all        20 small registered tables, `--parallel 1` vs `--parallel 4`, with the server up
  Prefect floor    a bare Prefect flow of three no-op tasks (the least any flow costs) against the same local server,
                   as a fresh process and as a second call in a warm process, with Prefect's heartbeats (its
                   default) and without (as the kit's commands run their flows), beside `run airlines` (fresh),
                   `ingest_airlines(report=False)` (warm, heartbeats on) and `run_entries` (warm, off); the goal is
                   within 1.2x of the floor as Prefect runs a flow (heartbeats on), fresh and warm; the rows with
                   both off show what the kit's own imports and work cost above a flow that does nothing
  make run         `make run` of this checkout (installed, demo source built) with nothing changed: the first starts
                   the project's local server and leaves it up, the warm ones reuse it; the goal is under 25 s warm
                   (no report renders again). The server is stopped afterwards unless it was up before.
  the runner       `server start` starts the project's runner beside the server: each command is handed to it and
                   runs in a fresh fork of a process that holds the kit's libraries imported. Side by side, the same
                   commands by themselves (MY_PACKAGE_RUNNER names no runner): `run airlines --no-reports` (goal
                   <= 1.0 s and <= 0.5x a bare three-task flow started as a fresh process, shown with Prefect's warm
                   floor: the same flow in a warm process, heartbeats off as the kit's commands run them),
                   `report flights --force` (goal <= 3 s) and the warm `make run` (goal <= 6 s).

Each command runs in a throwaway project directory, as typed: no make, no Prefect variables in the environment.
Run: make bench   (or .venv/bin/python bench/bench_fast_loop.py [--runs 3] [--no-make-run] [--runner-only])
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = ("airlines", "airports", "planes")  # the 20 small tables are copies of these, under new names


def clean_env() -> dict[str, str]:
    "The environment of a user's shell: no Prefect or kit variables."
    return {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MY_PACKAGE_"))}


BY_ITSELF = {"MY_PACKAGE_RUNNER": "/nonexistent/runner.sock"}  # names no runner: a command runs by itself


def kit(project: Path, *args: str, env: dict[str, str] | None = None) -> float:
    "Seconds that `python -m my_package ARGS` takes in `project` (`env` added); fail loudly when it fails."
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "my_package", *args],
        cwd=project,
        env={**clean_env(), **(env or {})},
        capture_output=True,
        text=True,
    )
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"`{' '.join(args)}` failed in {project}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return took


def median(fn, runs: int) -> tuple[float, list[float]]:
    "The median of `runs` calls of `fn` (which returns seconds), and every figure."
    figures = [fn() for _ in range(runs)]
    return statistics.median(figures), figures


def line(label: str, seconds: float, figures: list[float]) -> str:
    "One row of the side-by-side output."
    return f"  {label:62} {seconds:7.2f} s  ({', '.join(f'{s:.2f}' for s in figures)})"


def project_with(base: Path, tables: tuple[str, ...]) -> Path:
    "A project in `base` registering the demo `tables` (source built under data/)."
    from my_package.dev.demo import write_example_project

    write_example_project(base, tables)
    return base


def twenty_small_tables(base: Path) -> Path:
    "A project whose source holds 20 small tables (copies of airlines, airports and planes under new names)."
    from my_package.dev.demo import DEMO_KEYS, example_settings

    project_with(base, SMALL)
    names = [(f"small_{i:02d}", SMALL[i % len(SMALL)]) for i in range(20)]
    with sqlite3.connect(base / "data" / "source.db") as conn:
        for name, like in names:
            conn.execute(f"CREATE TABLE {name} AS SELECT * FROM {like}")
    text = example_settings((), "sqlite:///data/source.db", "sqlite:///data/warehouse.db")
    text += "".join(
        f"\n[table:{name}]\nsource_table = {name}\nprimary_key = {DEMO_KEYS[like]}\n" for name, like in names
    )
    (base / "settings.ini").write_text(text)
    return base


def database_copy(source: Path, table: str) -> float:
    "Seconds SQLite takes to copy `table` from `source` into a fresh warehouse file by itself (the floor)."
    target = source.parent / "floor.db"
    target.unlink(missing_ok=True)
    start = time.perf_counter()
    with sqlite3.connect(target) as conn:
        conn.execute("ATTACH DATABASE ? AS src", (str(source),))
        conn.execute(f"CREATE TABLE {table} AS SELECT * FROM src.{table}")
    return time.perf_counter() - start


BARE_FLOW = """
import contextlib, json, sys, time
from prefect import flow, task
from prefect.settings import temporary_settings


@task
def step(n: int) -> int:
    return n


@flow
def bare() -> int:
    return step(1) + step(2) + step(3)


def timed() -> float:
    # argv[2] "off": no heartbeats, as the kit's commands run their flows (my_package.flows.orchestration)
    quiet = sys.argv[2] == "off"
    begin = time.perf_counter()
    with temporary_settings(updates={"flows.heartbeat_frequency": None}) if quiet else contextlib.nullcontext():
        bare()
    return time.perf_counter() - begin


timed()  # the first call: imports, client, flow registration
print(json.dumps({"warm": [timed() for _ in range(int(sys.argv[1]))]}))
"""


WARM_KIT = """
import json, sys, time
from pathlib import Path
from my_package.dev.server import apply_prefect_settings, skip_slow_imports

skip_slow_imports()
apply_prefect_settings(Path.cwd())
from my_package.flows.factory import create_ingestion_flow
from my_package.flows.orchestration import run_entries
from my_package.registry.settings import load_settings

# argv[2] "on": the flow called directly (Prefect's heartbeats); "off": through run_entries, as the commands run it
flow, settings = create_ingestion_flow("airlines"), load_settings()
if sys.argv[2] == "on":
    load = lambda: flow(report=False)  # noqa: E731
else:
    load = lambda: run_entries(settings, ["airlines"], [], report=False)  # noqa: E731
load()  # the first call in the process: imports, client, flow registration


def timed() -> float:
    begin = time.perf_counter()
    load()
    return time.perf_counter() - begin


print(json.dumps({"warm": [timed() for _ in range(int(sys.argv[1]))]}))
"""


def served_env(project: Path) -> dict[str, str]:
    "A user's environment pointed at the project's local Prefect server, as the kit points its own commands."
    from my_package.dev.server import prefect_settings, running_server

    for _ in range(30):  # a busy server may take more than its health check's second to answer
        api = running_server(project)
        if api:
            break
        time.sleep(1)
    else:
        raise SystemExit(f"the local server of {project} is not up")
    return {**clean_env(), **prefect_settings(project), "PREFECT_API_URL": api}


def python_script(project: Path, code: str, *args: str, env: dict[str, str] | None = None) -> tuple[float, dict]:
    "Seconds that `python -c CODE ARGS` takes in `project` as a fresh process, and the JSON it prints last."
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=project, env=env or served_env(project), capture_output=True, text=True
    )
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"a benchmark script failed in {project}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return took, json.loads(out.stdout.strip().splitlines()[-1])


def prefect_floor(project: Path, runs: int) -> dict[str, tuple[float, list[float]]]:
    "The bare flow (Prefect's heartbeats on and off) and the kit's airlines flow, fresh and warm (server up)."
    found = {}
    for beats in ("on", "off"):
        found[f"bare fresh {beats}"] = median(lambda b=beats: python_script(project, BARE_FLOW, "0", b)[0], runs)
        figures = python_script(project, BARE_FLOW, str(runs), beats)[1]["warm"]
        found[f"bare warm {beats}"] = statistics.median(figures), figures
        figures = python_script(project, WARM_KIT, str(runs), beats)[1]["warm"]
        found[f"kit warm {beats}"] = statistics.median(figures), figures
    found["kit fresh off"] = median(lambda: kit(project, "run", "airlines", "--no-reports"), runs)
    return found


def through_the_runner(project: Path, runs: int) -> dict[str, tuple[float, list[float]]]:
    "The commands through the project's runner and by themselves, a bare flow fresh and warm (server and runner up)."
    found = {}
    for how, env in (("runner", None), ("itself", BY_ITSELF)):
        found[f"airlines {how}"] = median(lambda e=env: kit(project, "run", "airlines", "--no-reports", env=e), runs)
    found["bare fresh on"] = median(lambda: python_script(project, BARE_FLOW, "0", "on")[0], runs)
    figures = python_script(project, BARE_FLOW, str(runs), "off")[1]["warm"]
    found["bare warm off"] = statistics.median(figures), figures
    kit(project, "run", "flights", "--no-reports")
    for how, env in (("runner", None), ("itself", BY_ITSELF)):
        found[f"report {how}"] = median(lambda e=env: kit(project, "report", "flights", "--force", env=e), runs)
    return found


def print_runner_rows(found: dict[str, tuple[float, list[float]]]) -> None:
    "The runner's rows, each beside the command by itself."
    print("Through the project's runner (server start starts it) vs by itself, server up:")
    print(line("run airlines --no-reports, through the runner (goal <= 1.0 s)", *found["airlines runner"]))
    print(line("run airlines --no-reports, by itself", *found["airlines itself"]))
    print(line("bare three-task flow, fresh process (heartbeats on)", *found["bare fresh on"]))
    print(line("bare three-task flow, warm process (heartbeats off)", *found["bare warm off"]))
    ratio = found["airlines runner"][0] / found["bare fresh on"][0]
    print(f"  through the runner / a bare flow as a fresh process = {ratio:.2f}x (goal <= 0.5x)")
    print(f"  by itself / through the runner = {found['airlines itself'][0] / found['airlines runner'][0]:.2f}x")
    print(line("report flights --force, through the runner (goal <= 3 s)", *found["report runner"]))
    print(line("report flights --force, by itself", *found["report itself"]))
    print(f"  by itself / through the runner = {found['report itself'][0] / found['report runner'][0]:.2f}x")


def warm_make_run(runs: int) -> None:
    "`make run` of this checkout, nothing changed: the first, then warm through the runner and by itself."

    def make_run(env: dict[str, str] | None = None) -> float:
        start = time.perf_counter()
        make = ["make", "-C", str(ROOT), "--no-print-directory", "run"]
        subprocess.run(make, env={**clean_env(), **(env or {})}, check=True, capture_output=True)
        return time.perf_counter() - start

    from my_package.dev.server import running_server

    was_up = running_server(ROOT) is not None
    try:  # the first: installed, demo built, the project's server and runner started (make run leaves them up)
        first = make_run()
        print("make run of this checkout, nothing changed (reports waited for; goal < 25 s warm, <= 6 s warm with")
        print("the runner):")
        print(line(f"first, {'server already up' if was_up else 'starts the local server'}", first, [first]))
        print(line("warm, through the runner", *median(make_run, runs)))
        print(line("warm, each command by itself", *median(lambda: make_run(BY_ITSELF), runs)))
    finally:
        if not was_up:
            kit(ROOT, "server", "stop")


def with_server(project: Path, work) -> None:
    "Run `work()` with the project's local Prefect server up; stop it afterwards."
    kit(project, "server", "start")
    try:
        work()
    finally:
        kit(project, "server", "stop")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs per figure; the median is shown")
    p.add_argument("--no-make-run", action="store_true", help="skip the warm `make run` of this checkout")
    p.add_argument("--runner-only", action="store_true", help="only the rows of the runner (and `make run`)")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kit-bench-loop-"))
    try:
        if args.runner_only:
            demo = project_with(base / "demo", ("airlines", "flights"))
            found: dict[str, tuple[float, list[float]]] = {}
            with_server(demo, lambda: found.update(through_the_runner(demo, args.runs)))
            print_runner_rows(found)
            if not args.no_make_run:
                warm_make_run(args.runs)
            return
        demo = project_with(base / "demo", ("airlines", "flights"))
        small = twenty_small_tables(base / "small")
        results: dict[str, tuple[float, list[float]]] = {}
        results["no server"] = median(lambda: kit(demo, "run", "airlines"), args.runs)

        def served() -> None:
            results["server up"] = median(lambda: kit(demo, "run", "airlines"), args.runs)
            results["flights"] = median(lambda: kit(demo, "run", "flights"), args.runs)
            results.update(prefect_floor(demo, args.runs))

        with_server(demo, served)
        results["floor"] = median(lambda: database_copy(demo / "data" / "source.db", "flights"), args.runs)

        def parallel() -> None:
            for n in (1, 4):
                results[f"parallel {n}"] = median(
                    lambda n=n: kit(small, "run", "--all", "--parallel", str(n), "--no-reports"), args.runs
                )

        with_server(small, parallel)

        print("run airlines (16 rows; the report renders in the background with the server up):")
        print(line("local server up (python -m my_package server start)", *results["server up"]))
        print(line("no server (a temporary one per command)", *results["no server"]))
        print(f"  no server / server up = {results['no server'][0] / results['server up'][0]:.1f}x")
        print("run flights (336,776 rows, SQLite -> SQLite, server up):")
        print(line("python -m my_package run flights", *results["flights"]))
        print(line("SQLite's own copy (ATTACH; CREATE TABLE AS SELECT)", *results["floor"]))
        print(f"  kit / database = {results['flights'][0] / results['floor'][0]:.1f}x")
        print("Prefect's floor (server up): a bare flow of three no-op tasks vs the kit's airlines flow, no report.")
        print("  Heartbeats on: Prefect's default (each run waits up to 1 s at its end for the heartbeat thread);")
        print("  off: as the kit's commands run their flows (run_entries). The goal: the kit within 1.2x of the floor")
        print("  as Prefect runs a flow (heartbeats on); with both off, the rows show what the kit's own imports and")
        print("  work cost above a flow that does nothing.")
        rows = (
            ("fresh", "on", None),
            ("fresh", "off", "python -m my_package run airlines --no-reports"),
            ("warm", "on", "ingest_airlines(report=False), a later call"),
            ("warm", "off", "run_entries(airlines), a later call"),
        )
        for when, beats, kit_row in rows:
            bare = f"bare {when} {beats}"
            process = "fresh process" if when == "fresh" else "a later call in a warm process"
            print(line(f"bare flow, {process}, heartbeats {beats}", *results[bare]))
            if kit_row:
                mine = f"kit {when} {beats}"
                print(line(kit_row + f" (heartbeats {beats})", *results[mine]))
                ratio = results[mine][0] / results[bare][0]
                goal = "goal <= 1.2x" if beats == "on" else "like for like, no goal"
                print(f"  kit / bare flow ({when}, heartbeats {beats}) = {ratio:.2f}x ({goal})")
        command_vs_default = results["kit fresh off"][0] / results["bare fresh on"][0]
        print(
            f"  the command / a bare flow as Prefect runs it (fresh, heartbeats on) = {command_vs_default:.2f}x (goal <= 1.2x)"
        )
        print("run --all over 20 small tables (server up, --no-reports):")
        print(line("--parallel 1", *results["parallel 1"]))
        print(line("--parallel 4", *results["parallel 4"]))
        print(f"  sequential / parallel = {results['parallel 1'][0] / results['parallel 4'][0]:.2f}x")
        with_server(demo, lambda: results.update(through_the_runner(demo, args.runs)))
        print_runner_rows(results)
        if not args.no_make_run:
            warm_make_run(args.runs)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
