"""Waiting is said: two runs at once on one SQLite warehouse queue table by table and say so, a DuckDB file held by
another process is named within seconds and Ctrl-C stops the wait, and a lock that still fails says it is a lock."""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import CARRIER_TRANSFORM, assert_same_tables, wait_for, write_project
from test_end_to_end import check_transform
from test_fast_loop import api_post

from my_package.common.bookkeeping import mark_loading, unmark_loading
from my_package.common.cancel import cancellable
from my_package.common.db import check_connection, make_engine, warehouse_for
from my_package.common.locks import table_lock
from my_package.common.runs import HINTS, error_line
from my_package.common.sql import begin_write
from my_package.common.waits import listening, lock_holders, process_name
from my_package.common.warehouses import sqlite as sqlite_warehouse
from my_package.dev.demo import DEMO_TABLES
from my_package.errors import RunCancelled
from my_package.tasks.runtime import is_transient


def kit_env(settings: Path, prefect_server: dict, prefect_home: Path, columns: int = 80) -> dict:
    "A user's environment for `python -m my_package` on `settings` (the session's Prefect server), `columns` wide."
    return {
        **os.environ,
        "MY_PACKAGE_SETTINGS": str(settings),
        "PREFECT_API_URL": prefect_server["api"],
        "PREFECT_HOME": str(prefect_home),
        "COLUMNS": str(columns),
    }


class Kit:
    "`python -m my_package ARGS` started in its own process group (as a terminal starts it), its stderr read as it comes."

    def __init__(self, *args: str, settings: Path, env: dict):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "my_package", *args],
            cwd=settings.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.pid, self.lines, self.stdout = self.process.pid, [], []
        self.readers = [  # both pipes read as they come (a reader of one alone would race `communicate` for it)
            threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True),
            threading.Thread(target=lambda: self.stdout.extend(self.process.stdout), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @property
    def said(self) -> str:
        "Its stderr so far, each wrapped line joined back (a wait's line wraps under itself at 80 columns)."
        return " ".join("".join(self.lines).split())

    @property
    def out(self) -> str:
        "Its stdout so far."
        return "".join(self.stdout)

    def finish(self, timeout: float = 900) -> int:
        "Wait for it to end, and for everything it printed; its exit status."
        self.process.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=30)
        return self.process.returncode


@pytest.fixture
def start_kit():
    "Start `python -m my_package ARGS` (a `Kit`); whatever still runs when the test ends is killed."
    started: list[Kit] = []

    def start(*args: str, settings: Path, env: dict) -> Kit:
        started.append(Kit(*args, settings=settings, env=env))
        return started[-1]

    yield start
    for kit in started:
        if kit.process.poll() is None:  # a test that failed halfway: never leave a run behind, stopped or not
            with contextlib.suppress(ProcessLookupError):
                os.killpg(kit.pid, signal.SIGKILL)
            kit.process.wait(timeout=60)


def paused_in_its_load(runs: list[Kit], lock_file: Path, waiting: str, timeout: float = 600) -> Kit:
    "Stop whichever of `runs` first holds `lock_file` (a table's load lock) until another says `waiting`; return it."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holder = next((r for r in runs if r.pid in lock_holders(lock_file)), None)
        if holder is not None:
            os.kill(holder.pid, signal.SIGSTOP)
            if holder.pid in lock_holders(lock_file):  # stopped while it loads (not just after)
                break
            os.kill(holder.pid, signal.SIGCONT)
        assert any(r.process.poll() is None for r in runs), "both runs ended before either loaded the table"
        time.sleep(0.01)
    else:
        pytest.fail(f"no run took {lock_file.name} in {timeout:.0f} s")
    try:
        others = [r for r in runs if r is not holder]
        assert wait_for(lambda: any(waiting in r.said for r in others), timeout=300, every=0.1), [
            r.said for r in others
        ]
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    return holder


def test_two_runs_at_once_on_one_sqlite_warehouse_queue_table_by_table_and_say_so(
    tmp_path, demo_source, prefect_server, prefect_home, start_kit
):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copy(demo_source, project / "data" / "source.db")
    settings = write_project(
        project, DEMO_TABLES, "sqlite:///data/source.db", "sqlite:///data/warehouse.db", extra=CARRIER_TRANSFORM
    )
    source = make_engine(f"sqlite:///{project / 'data' / 'source.db'}")
    env = kit_env(settings, prefect_server, prefect_home)
    for _ in range(3):
        first = start_kit("run", "--all", "--no-reports", settings=settings, env=env)
        time.sleep(1)
        second = start_kit("run", "--all", "--no-reports", settings=settings, env=env)
        # the flights load lasts seconds, the gap between the runs one: which run loads it first, and whether the
        # other gets there meanwhile, is up to the machine. The first to hold its lock is held back until the other
        # says it waits (for that lock, or for the warehouse's, which the held-back run may hold too)
        held = paused_in_its_load([first, second], project / "data" / "warehouse.db.flights.lock", "waiting up to")
        waiting = second if held is first else first
        statuses = [first.finish(), second.finish()]
        assert statuses == [0, 0], "".join(first.lines) + "\n----\n" + "".join(second.lines)
        for run in (first, second):
            assert "database is locked" not in run.said + run.out and "Traceback" not in run.said, run.said
            # what it says fits 80 columns (a progress line ends with its run's URL, which no width holds)
            assert max(len(line.rstrip("\n")) for line in run.lines if "http" not in line) <= 80, run.lines
        # the waiting run said what it waits for (the table's load lock, or the warehouse file) and who holds it
        said = waiting.said
        assert f"held by process {held.pid} (my_package run --all --no-reports)" in said or (
            f"locked by process {held.pid} (my_package run --all --no-reports)" in said
        ), said
        assert "waiting up to 60 min for the table's load lock" in said or "waiting up to 10 min for" in said, said
        warehouse = make_engine(f"sqlite:///{project / 'data' / 'warehouse.db'}")
        assert_same_tables(source, warehouse)
        check_transform(source, warehouse)
        assert not [t for t in sa.inspect(warehouse).get_table_names() if t.startswith("_staging_")]


def test_a_command_forked_by_the_runner_is_named_by_its_command_in_another_runs_wait(
    tmp_path, demo_source, prefect_server, prefect_home, runner, start_kit
):
    "The project's runner forks each command: the wait of another run names the fork by its command, not the runner's."
    settings = write_project(tmp_path, ("flights",), f"sqlite:///{demo_source}", "sqlite:///warehouse.db")
    env = {**kit_env(settings, prefect_server, prefect_home), "MY_PACKAGE_RUNNER": runner["socket"]}
    lock, deadline = tmp_path / "warehouse.db.flights.lock", time.monotonic() + 600
    first = start_kit("run", "flights", "--no-reports", settings=settings, env=env)
    while time.monotonic() < deadline:  # the runner's fork that runs it takes the lock: stopped while it loads
        holder = next(iter(lock_holders(lock)), None)
        if holder is not None:
            os.kill(holder, signal.SIGSTOP)
            if holder in lock_holders(lock):
                break
            os.kill(holder, signal.SIGCONT)
        assert first.process.poll() is None, first.said
        time.sleep(0.01)
    else:
        pytest.fail(f"the run took no lock in 600 s: {first.said}")
    try:
        assert holder != first.pid  # the command runs in the runner's fork, not in the process that typed it
        second = start_kit("run", "flights", "--no-reports", settings=settings, env=env)
        said = f"held by process {holder} (my_package run flights --no-reports)"  # the load lock, or the file's
        assert wait_for(lambda: said in second.said.replace("locked by", "held by"), timeout=300, every=0.1), (
            second.said
        )
    finally:
        os.kill(holder, signal.SIGCONT)
    assert [first.finish(), second.finish()] == [0, 0], first.said + "\n----\n" + second.said
    assert_same_tables(
        make_engine(f"sqlite:///{demo_source}"), make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}"), ("flights",)
    )


HOG = """
import os, sys, time
from my_package.common.db import make_engine
from my_package.common.sql import begin_write
warehouse, until = make_engine(sys.argv[1]), time.monotonic() + 120
print("writing", flush=True)
while not os.path.exists(sys.argv[2]) and time.monotonic() < until:  # the kit's writes back to back, as a run's are
    with begin_write(warehouse) as conn:
        conn.exec_driver_sql("INSERT INTO log VALUES (1)")
"""


def test_a_write_to_a_sqlite_warehouse_gets_its_turn_among_writes_back_to_back(tmp_path):
    "Kit writes back to back from other processes (a run's, from its threads) never fail a write: it takes its turn."
    # a stress test of the turns, not a test of the old failure: SQLite's own wait got through here too, mostly
    # (a writer it starved failed at 30 s: see the next test, a lock held longer than that)
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    warehouse = make_engine(url)
    with warehouse.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE log (x INTEGER)")
    mark_loading(warehouse, "flights", None)  # the bookkeeping's table, created before the others write
    stop, heard = tmp_path / "stop", []
    hogs = [
        subprocess.Popen(
            [sys.executable, "-c", HOG, url, str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    try:
        for hog in hogs:
            hog.stdout.readline()
        with listening(heard.append):
            # the write of a run's bookkeeping that failed after 30 s ("database is locked") in the second run
            mark_loading(warehouse, "flights", None)
            unmark_loading(warehouse, "flights")
    finally:
        stop.touch()
        ended = [hog.communicate(timeout=120) for hog in hogs]
    assert [hog.returncode for hog in hogs] == [0, 0, 0], ended  # none of the others failed on a lock either
    assert all(
        line.startswith(f"Waiting up to 10 min for {tmp_path / 'warehouse.db'}, locked by process") for line in heard
    ), heard


def test_a_write_outwaits_a_lock_held_longer_than_sqlites_own_timeout(tmp_path):
    "SQLite's busy timeout was the kit's (30 s): a load whose bookkeeping met a longer lock failed, outside any retry."
    warehouse = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    mark_loading(warehouse, "flights", None)
    holder = subprocess.Popen(  # another run's long write, say a large copy on a busy machine
        [
            sys.executable,
            "-c",
            f"import sqlite3, sys; c = sqlite3.connect({str(tmp_path / 'warehouse.db')!r}, isolation_level=None); "
            "c.execute('BEGIN IMMEDIATE'); print(1, flush=True); sys.stdin.readline(); c.execute('COMMIT')",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    holder.stdout.readline()
    heard, ended, started, who = [], [], time.monotonic(), process_name(holder.pid)

    def bookkeeping() -> None:
        with listening(heard.append):
            try:
                mark_loading(warehouse, "flights", None)  # the first write of every load (`clear_leftovers`)
                ended.append("marked")
            except Exception as e:
                ended.append(error_line(e, "extract_table"))

    worker = threading.Thread(target=contextvars.copy_context().run, args=(bookkeeping,))
    worker.start()
    try:
        # the lock is held past SQLite's 30 s (or until the write gave up)
        wait_for(lambda: ended or time.monotonic() - started > 31, timeout=60, every=0.1)
    finally:
        holder.communicate("go\n", timeout=60)
    worker.join(60)
    assert ended == ["marked"], ended
    assert heard == [f"Waiting up to 10 min for {tmp_path / 'warehouse.db'}, locked by {who}"], heard


def test_a_sqlite_wait_is_said_on_the_terminal_naming_the_holder(
    tmp_path, demo_source, prefect_server, prefect_home, start_kit
):
    settings = write_project(tmp_path, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///warehouse.db")
    sqlite3.connect(tmp_path / "warehouse.db").close()
    holder = subprocess.Popen(  # a notebook, say, that began a write and has not committed yet
        [
            sys.executable,
            "-c",
            f"import sqlite3, sys; c = sqlite3.connect({str(tmp_path / 'warehouse.db')!r}, isolation_level=None); "
            "c.execute('BEGIN IMMEDIATE'); print(1, flush=True); sys.stdin.readline(); c.execute('COMMIT')",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    holder.stdout.readline()
    run = start_kit(
        "run", "airlines", "--no-reports", settings=settings, env=kit_env(settings, prefect_server, prefect_home)
    )
    try:
        said = f"airlines: waiting up to 10 min for warehouse.db, locked by process {holder.pid}"  # in the project
        assert wait_for(lambda: said in run.said, timeout=300, every=0.1), run.said
    finally:
        holder.communicate("go\n", timeout=60)  # the holder commits: the run's turn comes
    assert run.finish() == 0, run.said
    assert run.said.count("waiting up to") == 1, run.said  # once, however many statements waited
    flow_run = re.search(r"/runs/flow-run/([0-9a-f-]{36})", run.said).group(1)  # the run's log says it too

    def logged() -> list[str]:
        found = api_post(f"{prefect_server['api']}/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run]}}})
        return [entry["message"] for entry in found]

    assert wait_for(lambda: any(said in message for message in logged()), timeout=60, every=0.5), logged()
    assert max(len(line.rstrip("\n")) for line in run.lines if "http" not in line) <= 80, run.lines


def duckdb_holder(path: Path) -> subprocess.Popen:
    "Another process that opens the DuckDB file `path` and keeps it open (until killed)."
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print(1, flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    holder.stdout.readline()
    return holder


def test_a_duckdb_file_held_by_another_process_is_said_and_ctrl_c_stops_the_wait(
    tmp_path, demo_source, prefect_server, prefect_home, start_kit
):
    settings = write_project(tmp_path, ("airlines",), f"sqlite:///{demo_source}", "duckdb:///warehouse.duckdb")
    holder = duckdb_holder(tmp_path / "warehouse.duckdb")
    try:
        run = start_kit(
            "run", "airlines", "--no-reports", settings=settings, env=kit_env(settings, prefect_server, prefect_home)
        )
        said = f"Waiting up to 2 min for warehouse.duckdb, held by process {holder.pid} (python"
        # the wait says itself a second into it: long before its 2 minutes are over (the command starts in seconds)
        assert wait_for(lambda: said in run.said, timeout=60, every=0.1), run.said
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it
        assert run.finish(timeout=60) == 130, run.said
    finally:
        holder.kill()
        holder.wait()
    assert "Stopped waiting for warehouse.duckdb (Ctrl-C)" in run.said, run.said
    assert "Traceback" not in run.said and max(len(line.rstrip("\n")) for line in run.lines) <= 80, run.lines


def test_a_wait_is_said_a_second_into_it(tmp_path):
    "The engine's side of the line above: said once the wait has lasted a second, not later."
    holder = duckdb_holder(tmp_path / "held.duckdb")
    engine, heard, started = make_engine(f"duckdb:///{tmp_path / 'held.duckdb'}"), [], time.monotonic()
    done = threading.Event()

    def connect() -> None:
        with listening(lambda line: heard.append((time.monotonic() - started, line))):
            with contextlib.suppress(Exception):
                check_connection(engine, "warehouse")
        done.set()

    threading.Thread(target=contextvars.copy_context().run, args=(connect,), daemon=True).start()
    try:
        assert wait_for(lambda: heard, timeout=60), "the wait was never said"
    finally:
        holder.kill()
        holder.wait()
    assert done.wait(60)
    seconds, line = heard[0]
    assert line.startswith("Waiting up to 2 min for ") and f"process {holder.pid}" in line, line
    assert 1.0 <= seconds < 5, f"said {seconds:.1f} s into the wait"  # a second, with room for a loaded machine


def test_a_lock_that_still_fails_says_it_is_a_lock(tmp_path):
    "A raw lock error (a driver's own busy timeout, outside the kit's turns) names a lock and its fix, not settings.ini."
    path = tmp_path / "w.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with contextlib.closing(sqlite3.connect(path, timeout=0.1)) as other:
            with pytest.raises(sqlite3.OperationalError) as locked:
                other.execute("SELECT * FROM sqlite_master").fetchall()
    line = error_line(sa.exc.OperationalError("SELECT", {}, locked.value), "extract_table")
    assert "It is a lock" in line and HINTS["extract_table"] not in line and "settings.ini" not in line, line


def test_a_read_that_outlasts_sqlites_own_wait_names_the_file_and_its_holder(tmp_path, monkeypatch):
    "The fast read of a SQLite source (ADBC: SQLite's own busy wait, no turns) fails naming the file, who holds it, the fix."
    source = tmp_path / "source.db"
    with contextlib.closing(sqlite3.connect(source)) as conn:
        conn.executescript("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
    holder = subprocess.Popen(  # another process rewrites the source, say, and holds it past the read's wait
        [
            sys.executable,
            "-c",
            f"import sqlite3, sys; c = sqlite3.connect({str(source)!r}, isolation_level=None); "
            "c.execute('BEGIN EXCLUSIVE'); c.execute('DELETE FROM t'); print(1, flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    holder.stdout.readline()
    who = process_name(holder.pid)
    monkeypatch.setattr(sqlite_warehouse, "SQLITE_ALONE", 0.5)  # SQLite's own wait, 30 s in a run
    engine = make_engine(f"sqlite:///{source}")
    try:
        assert warehouse_for(engine).file == str(source)  # a file: its fast read is ADBC's
        with pytest.raises(sqlite3.OperationalError) as locked:
            list(warehouse_for(engine).read_batches(sa.select(sa.table("t", sa.column("x"))), 10))
    finally:
        holder.communicate("", timeout=60)
    assert str(locked.value) == f"database is locked: {source}, locked by {who}", locked.value
    assert is_transient(locked.value)  # a task still tries it again
    line = error_line(locked.value, "extract_table")
    assert line.startswith(f"OperationalError: database is locked: {source}, locked by process {holder.pid}"), line
    assert "It is a lock" in line and "settings.ini" not in line, line


def test_the_table_lock_on_postgresql_is_said_and_ctrl_c_stops_its_wait(pg_databases):
    warehouse = make_engine(pg_databases["warehouse"])
    other = sa.create_engine(pg_databases["warehouse"], poolclass=sa.pool.NullPool).connect()  # another run's load
    other.execute(sa.select(sa.func.pg_advisory_lock(sa.func.hashtext("my_package.load.orders"))))
    session = other.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    heard, outcome = [], []

    def load() -> None:
        with listening(heard.append), cancellable() as run:
            threading.Timer(2.5, run.cancel, args=("Ctrl-C",)).start()
            try:
                with table_lock(warehouse, "orders"):
                    outcome.append("loaded")
            except RunCancelled:
                outcome.append("cancelled")

    worker = threading.Thread(target=contextvars.copy_context().run, args=(load,))
    worker.start()
    worker.join(60)
    other.close()
    assert outcome == ["cancelled"], outcome
    assert heard == [
        f"Waiting up to 60 min for the table's load lock, held by another run (PostgreSQL session {session})",
        "Stopped waiting for the table's load lock (Ctrl-C)",
    ], heard
    with table_lock(warehouse, "orders", timeout=5):  # the other run is gone: its turn comes at once
        with begin_write(warehouse) as conn:
            assert conn.exec_driver_sql("SELECT 1").scalar_one() == 1
