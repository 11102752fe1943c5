"""A Prefect server and workers as real processes on 127.0.0.1, for the deployment test and benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from my_package.registry.settings import WORK_POOL

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PREFECT = Path(sys.executable).parent / "prefect"


def start_server(port: int, home: Path, log: Path, timeout: float = 180) -> subprocess.Popen:
    "Start a Prefect server on 127.0.0.1:`port` with its state under `home` (the kit's one server helper)."
    from my_package.dev.server import start_server as start

    return start(home, port, log, timeout)


def start_worker(prefect: Path, name: str, cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    "Start a process worker `name` on the pipeline pool (two flow runs at a time), polling every second."
    return subprocess.Popen(  # two: a deployed ingest-all holds one slot while it waits for the tables it fanned out
        [str(prefect), "worker", "start", "--pool", WORK_POOL, "--name", name, "--limit", "2"],
        cwd=cwd,
        env={**env, "PREFECT_WORKER_QUERY_SECONDS": "1"},
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    "Stop a process and its children: SIGTERM twice (a worker does not stop on the first), then SIGKILL."
    from my_package.dev.server import stop_process

    stop_process(process.pid)
    process.poll()


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


def deployment_runs(api: str, name: str) -> list:
    "Every flow run of the deployment `name` (whose flow has the same name), oldest first."
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"{name}/{name}")
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
    return sorted(runs, key=lambda r: r.created)


def settled_runs(api: str, name: str, at_least: int = 0, quiet: float = 10, timeout: float = 600) -> list:
    "The runs of deployment `name` once there are `at_least`, all have ended, and no new one came for `quiet` s."
    # a triggered run appears only once the server has handled its input's event, which on a busy machine can take
    # longer than `quiet`: the quiet time (no further run) counts from when the expected runs are there
    deadline, seen, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        runs = [r for r in deployment_runs(api, name) if not r.auto_scheduled]  # not the cron schedule's runs
        state = [(r.id, r.state and r.state.type.value) for r in runs]
        if state != seen:
            seen, since = state, time.monotonic()
        elif len(runs) >= at_least and all(s in TERMINAL for _, s in state) and time.monotonic() - since >= quiet:
            return runs
        time.sleep(1)
    raise TimeoutError(f"runs of {name} did not settle in {timeout} s: {seen}")


def read_artifacts(api: str, key: str) -> list[str]:
    "The contents of the artifacts stored under `key` (each version)."
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return [str(a.data) for a in found]


def pause_schedules(api: str) -> int:
    "Set every deployment's cron schedule inactive (runs then start only when asked or triggered); return how many."
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    paused = 0
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            for schedule in client.read_deployment_schedules(deployment.id):
                client.update_deployment_schedule(deployment.id, schedule.id, active=False)
                paused += 1
    return paused


def deploy_all(api: str, prefect_home: Path) -> None:
    "Deploy the committed prefect.yaml to the server at `api` the way `make deploy` does (`python -m my_package deploy`)."
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-m", "my_package", "deploy"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(prefect_home),
            "MY_PACKAGE_SETTINGS": str(root / "settings.ini"),
        },
    )
    if out.returncode != 0:
        raise RuntimeError(f"deploy failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
