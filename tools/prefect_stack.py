"""A Prefect server and workers as real processes on 127.0.0.1, for the deployment test and benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PREFECT = Path(sys.executable).parent / "prefect"


def healthy(api: str) -> bool:
    "True when the Prefect API at `api` answers."
    try:
        urllib.request.urlopen(api + "/health", timeout=3)
        return True
    except OSError:
        return False


def start_server(port: int, home: Path, log: Path, timeout: float = 180) -> subprocess.Popen:
    "Start `prefect server start` on 127.0.0.1:`port` with its database under `home`; wait until it answers."
    env = {
        "PATH": f"{PREFECT.parent}:/usr/bin:/bin",
        "HOME": str(home),
        "PREFECT_HOME": str(home),
        "LANG": "C.UTF-8",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    process = subprocess.Popen(
        [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api, deadline = f"http://127.0.0.1:{port}/api", time.monotonic() + timeout
    while not healthy(api):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError(f"the Prefect server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    return process


def start_worker(prefect: Path, name: str, cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    "Start a process worker `name` on the pipeline pool (one flow run at a time), polling every second."
    return subprocess.Popen(
        [str(prefect), "worker", "start", "--pool", "pipeline-pool", "--name", name, "--limit", "1"],
        cwd=cwd,
        env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1"},
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    "Stop a process and its children: SIGTERM twice (a worker does not stop on the first), then SIGKILL."
    for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def run_deployments(api: str, names: list[str], timeout: float = 900) -> list:
    "Start a run of each deployment in `names` at once; wait until all end; return the final flow runs."
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        runs = [client.create_flow_run_from_deployment(client.read_deployment_by_name(f"{n}/{n}").id) for n in names]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [client.read_flow_run(r.id) for r in runs]
            if all(r.state and r.state.type.value in TERMINAL for r in runs):
                return runs
            time.sleep(0.25)
    raise TimeoutError(f"runs did not finish in {timeout} s: {[(r.name, r.state and r.state.type) for r in runs]}")


def read_artifacts(api: str, key: str) -> list[str]:
    "The contents of the artifacts stored under `key` (each version)."
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return [str(a.data) for a in found]


def deploy_all(api: str, prefect_home: Path) -> None:
    "Deploy the committed prefect.yaml to the server at `api` the way `make deploy` does (tools/deploy.sh)."
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        ["bash", "tools/deploy.sh"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PREFECT_API_URL": api, "BIN": str(PREFECT.parent), "PREFECT_HOME": str(prefect_home)},
    )
    if out.returncode != 0:
        raise RuntimeError(f"deploy failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
