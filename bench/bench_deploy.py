"""Benchmark: from `deployment run` to a completed small-table run, on a warm process worker.

Starts a Prefect server on 127.0.0.1, deploys the committed prefect.yaml (tools/deploy.sh), starts one process
worker (polling every second, one run at a time) on a throwaway project with the demo airlines table, runs
`ingest-airlines` once to warm up, then times further runs from the API call that creates the run to the run's
Completed state. Each run is a new flow-run process on the worker (Prefect's process work pool), so the figure
includes that process's start-up. The table flows' own report step is turned off here (`[reports] in_flows`).

Run: make bench   (or .venv/bin/python bench/bench_deploy.py [--runs 5])
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from pg_cluster import free_port  # noqa: E402
from prefect_stack import deploy_all, run_deployments, start_server, start_worker, stop  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="timed runs; the median is shown")
    args = p.parse_args()
    from my_package.dev.demo import write_example_project

    base = Path(tempfile.mkdtemp(prefix="kit-bench-deploy-"))
    settings = write_example_project(base / "project", ("airlines",))
    settings.write_text(settings.read_text() + "\n[reports]\nin_flows = false\n")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    processes = []
    try:
        processes.append(start_server(port, base / "server", base / "server.log"))
        deploy_all(api, base / "d")
        env = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(base),
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(base / "w"),
            "MY_PACKAGE_SETTINGS": str(settings),
            "LANG": "C.UTF-8",
        }
        processes.append(start_worker(Path(sys.executable).parent / "prefect", "bench", base, env, base / "worker.log"))
        run_deployments(api, ["ingest-airlines"])  # warm-up
        seconds = []
        for _ in range(args.runs):
            start = time.perf_counter()
            [run] = run_deployments(api, ["ingest-airlines"])
            assert run.state.type.value == "COMPLETED", run.state.message
            seconds.append(time.perf_counter() - start)
        print(
            f"deployment run -> completed ingest-airlines (16 rows), warm process worker: median {statistics.median(seconds):.2f} s"
            f" (runs: {', '.join(f'{s:.2f}' for s in seconds)})"
        )
    finally:
        for process in reversed(processes):
            stop(process)


if __name__ == "__main__":
    main()
