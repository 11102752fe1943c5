"""A throwaway PostgreSQL 15 cluster on a free loopback port, for the tests and the benchmarks.

As root, initdb and pg_ctl run as the `postgres` user (PostgreSQL refuses to run as root) on a data directory
that user owns; as any other user they run as that user. The cluster listens on 127.0.0.1 only, with its own
socket directory, and is stopped and deleted when the context ends, also after a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    "A TCP port on 127.0.0.1 that nothing listens on right now."
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*cmd: str) -> subprocess.CompletedProcess:
    "Run a PostgreSQL binary as the postgres user (when root) or as ourselves."
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)


def start_cluster(password: str, fast: bool = True, max_connections: int = 200) -> dict:
    "Start a cluster with password authentication; return host, port, user, password, admin URL and its directory."
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL binaries not found in {PG_BIN}: install postgresql-15 or set PG_BIN.")
    base = Path(tempfile.mkdtemp(prefix="kit-pg-"))
    data, sock, pwfile = base / "data", base / "sock", base / "pwfile"
    sock.mkdir()
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        for p in (base, sock, pwfile):
            shutil.chown(p, "postgres")
    port = free_port()
    try:
        _as_postgres(
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c max_connections={max_connections}"
        if fast:  # throwaway data: no need to survive a power cut
            opts += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        _as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "-t", "60", "start"
        )
    except Exception:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return {
        "host": "127.0.0.1",
        "port": port,
        "user": "postgres",
        "password": password,
        "admin_url": f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/postgres",
        "directory": str(base),
        "log": str(base / "log"),
    }


def stop_cluster(cluster: dict) -> None:
    "Stop a cluster started by `start_cluster` and delete its files."
    base = Path(cluster["directory"])
    with contextlib.suppress(subprocess.CalledProcessError):
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(base / "data"), "-m", "fast", "-w", "stop")
    shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster(password: str, fast: bool = True, max_connections: int = 200) -> Iterator[dict]:
    "A cluster for the length of the context (`start_cluster`), stopped and deleted afterwards, also after a failure."
    cluster = start_cluster(password, fast, max_connections)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
