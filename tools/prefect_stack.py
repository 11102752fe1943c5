"""A Prefect server and workers as real processes on 127.0.0.1, for the deployment tests and benchmarks: the
server on SQLite or on PostgreSQL, a proxy in front of it that can answer 500 for a while, which worker runs a
flow run, and the peak number of PostgreSQL connections while something runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from my_package.registry.settings import WORK_POOL

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
PREFECT = Path(sys.executable).parent / "prefect"


def start_server(
    port: int, home: Path, log: Path, timeout: float = 180, database_url: str | None = None
) -> subprocess.Popen:
    "Start a Prefect server on 127.0.0.1:`port`, state under `home`, its database on SQLite or at `database_url`."
    from my_package.dev.server import start_server as start

    # a team's server keeps its database on PostgreSQL (postgresql+asyncpg://...): SQLite answers "database is
    # locked" under many runs at once
    return start(
        home, port, log, timeout, {"PREFECT_API_DATABASE_CONNECTION_URL": database_url} if database_url else None
    )


def start_worker(prefect: Path, name: str, cwd: Path, env: dict, log: Path, limit: int = 2) -> subprocess.Popen:
    "Start a process worker `name` on the pipeline pool (`limit` flow runs at a time), polling every second."
    return subprocess.Popen(  # two: a deployed ingest-all holds one slot while it waits for the tables it fanned out
        [str(prefect), "worker", "start", "--pool", WORK_POOL, "--name", name, "--limit", str(limit)],
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


def deploy_project(api: str, project: Path, prefect_home: Path) -> None:
    "Generate `project`'s prefect.yaml from its settings.ini and deploy it the way `make deploy` does."
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(prefect_home)}
    env["MY_PACKAGE_SETTINGS"] = str(project / "settings.ini")
    for command in (["deployments", "--write"], ["deploy"]):
        out = subprocess.run(
            [sys.executable, "-m", "my_package", *command],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def flow_runs(api: str, names: list[str] | None = None, states: list[str] | None = None) -> list:
    "The flow runs of the deployments `names` (every deployment when None) in `states` (any when None), oldest first."
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    only = (
        FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType(s) for s in states])))
        if states
        else None
    )
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=only,
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names)) if names else None,
            limit=200,
        )
    return sorted(runs, key=lambda r: r.created)


def start_runs(api: str, names: list[str]) -> list:
    "Start a run of each deployment in `names` (whose flow has the same name) and return the runs, not waiting."
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        return [client.create_flow_run_from_deployment(client.read_deployment_by_name(f"{n}/{n}").id) for n in names]


def wait_for_run(api: str, flow_run_id, timeout: float) -> object:
    "The flow run `flow_run_id` once it has ended (a TimeoutError naming its state after `timeout` s)."
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state and run.state.type.value in TERMINAL:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{run.name} still {run.state and run.state.name} after {timeout:.0f} s")
            time.sleep(0.5)


def run_log(api: str, flow_run_id) -> list[str]:
    "The messages of the flow run's log, in order."
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
    return [entry.message for entry in sorted(logs, key=lambda entry: entry.timestamp)]


def descendants(pid: int) -> list[int]:
    "Every process below `pid` (children, their children, ...), read from /proc."
    parents = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def worker_of(workers: dict[str, subprocess.Popen], flow_run_id) -> str | None:
    "The name of the worker (of `workers`, by name) whose flow process runs `flow_run_id`, if one does now."
    wanted = f"PREFECT__FLOW_RUN_ID={flow_run_id}".encode()
    for name, worker in workers.items():
        for pid in descendants(worker.pid):
            with contextlib.suppress(OSError):
                if wanted in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    return name
    return None


class ConnectionPeaks:
    "Samples pg_stat_activity every `every` s on a thread: the peak number of client connections, per database and in all."

    def __init__(self, admin_url: str, every: float = 0.2):
        import psycopg

        self.peaks, self.total, self._stop = {}, 0, threading.Event()
        self._conn = psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)
        self._thread.start()

    def _sample(self, every: float) -> None:
        while not self._stop.is_set():
            rows = self._conn.execute(
                "SELECT datname, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid() GROUP BY datname"
            ).fetchall()
            for database, count in rows:
                self.peaks[database] = max(self.peaks.get(database, 0), count)
            self.total = max(self.total, sum(count for _, count in rows))
            self._stop.wait(every)

    def stop(self) -> dict:
        "Stop sampling; the peaks by database, and `*` for all of them at once (the sampler's own not counted)."
        self._stop.set()
        self._thread.join(timeout=10)
        self._conn.close()
        return {**self.peaks, "*": self.total}


class FlakyAPI:
    "A TCP proxy on 127.0.0.1 in front of a Prefect server; `fail_for(s)` drops its connections and answers 500."

    ANSWER = b'{"exception_message":"Internal Server Error"}'

    def __init__(self, upstream_port: int):
        self.upstream, self.failing_until, self.refused, self._open = upstream_port, 0.0, 0, set()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        start = asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(30)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/api"

    async def _handle(self, reader, writer) -> None:
        if time.monotonic() < self.failing_until:
            return await self._refuse(reader, writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        pair = (writer, up_writer)
        self._open.add(pair)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        self._open.discard(pair)

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def _refuse(self, reader, writer) -> None:
        "Read one request and answer it 500 (as a server whose database pool is full does), then close."
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                ),
                0,
            )
            if length:
                await asyncio.wait_for(reader.readexactly(length), 10)
            self.refused += 1
            writer.write(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(self.ANSWER)}\r\nConnection: close\r\n\r\n".encode()
                + self.ANSWER
            )
            await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def fail_for(self, seconds: float) -> None:
        "From now, for `seconds`: every connection is cut, and every request answered 500."
        self.failing_until = time.monotonic() + seconds

        def cut() -> None:
            for pair in list(self._open):
                for writer in pair:
                    writer.transport.abort()

        self.loop.call_soon_threadsafe(cut)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)


PG_PASSWORD = "kit-Team-pw-2718"  # a throwaway cluster's password


def team_settings(tables: dict[str, str], warehouse: str, deployments: str = "", alerts: str = "") -> str:
    "A settings.ini for a team's set-up: `tables` (name -> demo table it copies) from source.db into `warehouse`."
    from my_package.dev.demo import DEMO_KEYS

    text = f"[profile:pgwh]\nsource = sqlite:///source.db\nwarehouse = {warehouse}\n"
    text += f"\n[deployments]\n{deployments}\n[reports]\nin_flows = false\n"
    text += f"\n[alerts]\nurl = {alerts}\n" if alerts else ""
    for name, source in tables.items():
        text += f"\n[table:{name}]\nsource_table = {source}\nprimary_key = {DEMO_KEYS[source]}\n"
    return text


def copies(count: int) -> dict[str, str]:
    "The demo's five tables and `count` copies of them (flights_2, ..., cycling through the five): name -> source."
    from my_package.dev.demo import DEMO_TABLES

    tables = {t: t for t in DEMO_TABLES}
    for i in range(count):
        source = DEMO_TABLES[(i + 4) % len(DEMO_TABLES)]  # flights first: the longest loads
        tables[f"{source}_{i // len(DEMO_TABLES) + 2}"] = source
    return tables


@contextlib.contextmanager
def team_stack(
    base: Path,
    source_db: Path,
    tables: dict[str, str],
    prefect: Path,
    deployments: str = "",
    alerts: str = "",
    max_connections: int = 50,
):
    """A team's production on 127.0.0.1: one PostgreSQL (max_connections) holding the Prefect server's database and
    the warehouse, a Prefect server on it behind a FlakyAPI proxy, the project deployed from its own settings.ini
    (MY_PACKAGE_PROFILE=pgwh); workers are started with the `start` function it yields in its record."""
    import shutil

    import sqlalchemy as sa
    from pg_cluster import free_port, start_cluster, stop_cluster

    cluster, processes, proxy = start_cluster(PG_PASSWORD, max_connections=max_connections), [], None
    try:
        admin = sa.create_engine(cluster["admin_url"], isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        with admin.connect() as conn:
            for database in ("prefect", "warehouse"):
                conn.exec_driver_sql(f"CREATE DATABASE {database}")
        at = f"{PG_PASSWORD}@127.0.0.1:{cluster['port']}"
        port = free_port()
        processes.append(
            start_server(port, base / "server", base / "server.log", 600, f"postgresql+asyncpg://postgres:{at}/prefect")
        )
        api, proxy = f"http://127.0.0.1:{port}/api", FlakyAPI(port)
        project = base / "project"
        project.mkdir(parents=True, exist_ok=True)
        shutil.copy(source_db, project / "source.db")
        warehouse = f"postgresql+psycopg://postgres:{at}/warehouse"
        (project / "settings.ini").write_text(team_settings(tables, warehouse, deployments, alerts))
        deploy_project(api, project, base / "deployer")
        workers: dict[str, subprocess.Popen] = {}

        def start(name: str, limit: int) -> subprocess.Popen:
            "Start the worker `name` (`limit` runs at once) the way the README says, through the proxy."
            env = {
                "PATH": f"{prefect.parent}:/usr/bin:/bin",
                "HOME": str(base),
                "LANG": "C.UTF-8",
                "PREFECT_API_URL": proxy.url,
                "PREFECT_HOME": str(base / f".prefect-{name}"),
                "PREFECT_CLIENT_RETRY_EXTRA_CODES": "500",
                "MY_PACKAGE_SETTINGS": str(project / "settings.ini"),
                "MY_PACKAGE_PROFILE": "pgwh",
                "MY_PACKAGE_RUNNER": name,
            }
            (base / "work").mkdir(exist_ok=True)
            workers[name] = start_worker(prefect, name, base / "work", env, base / f"{name}.log", limit)
            processes.append(workers[name])
            return workers[name]

        yield {
            "api": api,
            "proxy": proxy,
            "cluster": cluster,
            "project": project,
            "warehouse": warehouse,
            "workers": workers,
            "start": start,
            "logs": base,
        }
    finally:
        for process in reversed(processes):
            stop(process)
        if proxy:
            proxy.close()
        stop_cluster(cluster)
