"""Faults, bad input, alerts and secrets: a crash or a bad definition never costs data and always says what happened."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import Webhook, load, table_rows, write_project

from my_package.common.db import make_engine
from my_package.dev.server import prefect_settings
from my_package.errors import SettingsError
from my_package.registry.settings import parse_settings

ITEMS = sa.Table(
    "items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("price", sa.Float),
)


def fill(engine: sa.Engine, ids: range) -> None:
    "Create (if needed) and fill the source table `items`."
    ITEMS.create(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.execute(sa.insert(ITEMS), [{"id": i, "name": f"item {i}", "price": i / 4} for i in ids])


# ---- helpers: a webhook receiver and a flaky TCP proxy, both on 127.0.0.1, both stopped by their fixtures ----


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


class FlakyProxy:
    "A TCP proxy on 127.0.0.1 that closes the first `refuse` connections (all if None), then forwards to `port`."

    def __init__(self, port: int, refuse: int | None):
        self.port, self.refuse, self.connections, self.stopped = port, refuse, 0, False
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.address = self.sock.getsockname()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            if self.refuse is None or self.connections <= self.refuse:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopped = True
        self.sock.close()


def run_flow(table: str, settings: Path, prefect_home: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    "Run the table's Prefect flow by itself (no command line, no pre-flight check) in a fresh interpreter."
    code = f"from my_package.flows.ingestion import ingest_{table}; ingest_{table}(report=False)"
    full = {
        **os.environ,
        "MY_PACKAGE_SETTINGS": str(settings),
        **prefect_settings(prefect_home.parent),  # the kit's Prefect settings, as the command line applies them
        "PREFECT_HOME": str(prefect_home),
        **(env or {}),
    }
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=600)


# ---- crash: SIGKILL part-way through a load ---------------------------------------------------------------------

SLOW = """
import os, pathlib, time
def slow(frame):
    marker = pathlib.Path(os.environ["KIT_MARKERS"])
    marker.joinpath(str(time.monotonic_ns())).touch()
    time.sleep(0.4)
    return frame
"""
LOAD_SCRIPT = """
import sys
from my_package.tasks.verify import check_staged_table
from my_package.tasks.extract import extract_table
from my_package.tasks.load import load_table_atomically
from my_package.common.runs import resolve_run
run = resolve_run("items")
staged = extract_table.fn(run)
check_staged_table.fn(run, staged)
load_table_atomically.fn(run, staged)
"""


@pytest.mark.parametrize("warehouse_kind", ["sqlite", "postgresql"])
def test_a_load_killed_part_way_keeps_the_previous_table(warehouse_kind, tmp_path, request, monkeypatch):
    source = make_engine(f"sqlite:///{tmp_path / 'source.db'}")
    warehouse_url = (
        request.getfixturevalue("pg_databases")["warehouse"]
        if warehouse_kind == "postgresql"
        else f"sqlite:///{tmp_path / 'wh.db'}"
    )
    fill(source, range(1, 21))
    (tmp_path / "kit_slow.py").write_text(SLOW)
    section = "[table:items]\nsource_table = items\nprimary_key = id\n"
    settings = tmp_path / "settings.ini"
    settings.write_text(
        f"[pipeline]\nchunk_size = 4\n[profile:default]\nsource = {source.url}\nwarehouse = {warehouse_url}\n{section}"
    )
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    assert load("items") == 20
    warehouse = make_engine(warehouse_url)
    before = table_rows(warehouse, "items")

    fill(source, range(21, 61))  # 60 rows now: 15 batches of 4 at 0.4 s each
    settings.write_text(settings.read_text() + "transform = kit_slow:slow\n")
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "KIT_MARKERS": str(markers), "MY_PACKAGE_SETTINGS": str(settings)}
    child = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(markers.iterdir())) < 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.poll() is None, f"the load ended before it could be killed: {child.stderr.read().decode()[-2000:]}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    assert table_rows(warehouse, "items") == before  # the previous complete table, same rows
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("KIT_MARKERS", str(markers))
    assert load("items") == 60  # the next run, same settings, completes with exactly the source's rows
    assert table_rows(warehouse, "items") == table_rows(source, "items")


# ---- a flaky source and a source that is down for good ------------------------------------------------------


@pytest.fixture
def pg_source_project(tmp_path, pg_databases, postgres, prefect_home, prefect_server):
    "A PostgreSQL source with `items` (20 rows) loaded once into a SQLite warehouse; yields what the tests need."
    fill(make_engine(pg_databases["source"]), range(1, 21))
    settings = tmp_path / "settings.ini"

    def write(source_url: str, alert_url: str = "") -> Path:
        settings.write_text(
            f"[pipeline]\n[alerts]\nurl = {alert_url}\n[profile:default]\nsource = {source_url}\n"
            f"warehouse = sqlite:///{tmp_path / 'wh.db'}\n[table:items]\nsource_table = items\nprimary_key = id\n"
        )
        return settings

    os.environ["MY_PACKAGE_SETTINGS"] = str(write(pg_databases["source"]))
    try:
        load("items")
    finally:
        del os.environ["MY_PACKAGE_SETTINGS"]
    proxies = []

    def proxy(refuse: int | None) -> str:
        p = FlakyProxy(postgres["port"], refuse)
        proxies.append(p)
        return sa.make_url(pg_databases["source"]).set(port=p.address[1]).render_as_string(hide_password=False)

    yield {
        "write": write,
        "proxy": proxy,
        "warehouse": make_engine(f"sqlite:///{tmp_path / 'wh.db'}"),
        "source": make_engine(pg_databases["source"]),
        "proxies": proxies,
        "home": tmp_path / "prefect",
        "env": {"PREFECT_API_URL": prefect_server["api"]},  # the session's server: no temporary one to wait for
    }
    for p in proxies:
        p.close()


def test_a_source_that_refuses_two_connections_succeeds_through_retries(pg_source_project):
    p = pg_source_project
    fill(p["source"], range(21, 31))
    settings = p["write"](p["proxy"](refuse=2))
    out = run_flow("items", settings, p["home"], p["env"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Retry 1/2" in out.stderr and "Retry 2/2" in out.stderr  # Prefect retried extract_table twice
    assert p["proxies"][0].connections >= 3
    assert table_rows(p["warehouse"], "items") == table_rows(p["source"], "items")


def test_a_source_down_for_good_fails_bounded_alerts_once_and_changes_nothing(pg_source_project, webhook):
    p = pg_source_project
    before = table_rows(p["warehouse"], "items")
    settings = p["write"](p["proxy"](refuse=None), webhook.url)
    start = time.monotonic()
    out = run_flow("items", settings, p["home"], p["env"])
    elapsed = time.monotonic() - start
    assert out.returncode != 0
    assert elapsed < 300, f"a dead source must fail within a bounded time, took {elapsed:.0f} s"
    assert "Cannot connect to the source" in out.stderr
    assert len(webhook.received) == 1, webhook.received
    alert = webhook.received[0]["message"]
    for field in (
        "flow: ingest-items",
        "table: items",
        "task: extract_table",
        "error: ",
        "Cannot connect to the source",
    ):
        assert field in alert, alert
    assert table_rows(p["warehouse"], "items") == before


def test_an_unreachable_alert_target_does_not_mask_the_failure(pg_source_project):
    p = pg_source_project
    dead_port = socket.create_server(("127.0.0.1", 0))
    url = f"json://127.0.0.1:{dead_port.getsockname()[1]}/hook"
    dead_port.close()
    settings = p["write"](p["proxy"](refuse=None), url)
    out = run_flow("items", settings, p["home"], p["env"])
    assert out.returncode != 0
    assert "Cannot connect to the source" in out.stderr  # the original failure is what the run reports
    assert "Could not send the failure alert" in out.stderr


# ---- bad input: clear errors, nothing changed, hostile names never executed ----------------------------------


def test_bad_table_definitions_fail_clearly_and_change_nothing(cli, tmp_path, demo_source, webhook):
    source = make_engine(f"sqlite:///{tmp_path / 'source.db'}")
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE sentinel (x INTEGER)")
        conn.exec_driver_sql("CREATE TABLE airlines AS SELECT 'AA' AS carrier, 'American' AS name")
        conn.exec_driver_sql("CREATE TABLE gone (id INTEGER)")
    warehouse = make_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    with warehouse.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE sentinel (x INTEGER)")
        conn.exec_driver_sql("CREATE TABLE gone AS SELECT 1 AS id")
    settings = write_project(
        tmp_path,
        ("airlines",),
        str(source.url),
        str(warehouse.url),
        extra=(
            f"\n[alerts]\nurl = {webhook.url}\n"
            "[table:gone]\nsource_table = gone\nprimary_key = id\n"
            "[table:bad_query]\nquery = SELECT nosuchcolumn FROM airlines\nprimary_key = carrier\n"
            "[table:hostile]\nsource_table = users; DROP TABLE sentinel\nprimary_key = id\n"
        ),
    )
    with source.begin() as conn:
        conn.exec_driver_sql("DROP TABLE gone")  # the source table vanished after it was registered
    out = cli("run", "--all", "--no-reports", "--no-transform", settings=settings)
    text = out.stdout + out.stderr
    assert out.returncode == 1
    assert "Table 'gone' does not exist" in text and "Tables there: airlines, sentinel" in text
    assert "no such column: nosuchcolumn" in text
    assert "Table 'users; DROP TABLE sentinel' does not exist" in text
    assert "Retry" not in text  # none of these can pass on its own: no retries
    for engine in (source, warehouse):
        assert sa.inspect(engine).has_table("sentinel"), "a hostile name was executed"
    assert table_rows(warehouse, "gone") == [(1,)]  # unchanged
    assert table_rows(warehouse, "airlines") == [("AA", "American")]
    assert sorted(json.dumps(a) for a in webhook.received).__len__() == 3  # one alert per failed table flow run


def test_hostile_column_and_table_names_are_quoted_never_executed(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    hostile = sa.Table(
        "it's; DROP TABLE sentinel",
        sa.MetaData(),
        sa.Column("id", sa.Integer),
        sa.Column('x"; DROP TABLE sentinel; --', sa.Text),
    )
    for engine in (source, warehouse):
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE sentinel (x INTEGER)")
    hostile.create(source)
    with source.begin() as conn:
        conn.execute(sa.insert(hostile), [{"id": 1, 'x"; DROP TABLE sentinel; --': "still here"}])
    project("[table:odd]\nsource_table = it's; DROP TABLE sentinel\nprimary_key = id\n")
    assert load("odd") == 1
    assert table_rows(warehouse, "odd") == [(1, "still here")]
    for engine in (source, warehouse):
        assert sa.inspect(engine).has_table("sentinel")


def test_names_that_no_database_should_see_are_refused(tmp_path):
    base = "[pipeline]\n[profile:default]\nsource = sqlite:///s.db\nwarehouse = sqlite:///w.db\n"
    with pytest.raises(SettingsError, match="Invalid source_table"):
        parse_settings(base + "[table:x]\nsource_table = bad\x00name\nprimary_key = id\n")
    with pytest.raises(SettingsError, match="must be lower case letters"):
        parse_settings(base + "[table:x; drop table y]\nsource_table = x\nprimary_key = id\n")
    with pytest.raises(SettingsError, match="Invalid primary key column"):
        parse_settings(base + "[table:x]\nsource_table = x\nprimary_key = id\x01\n")


# ---- secrets ----------------------------------------------------------------------------------------------


def test_a_password_appears_nowhere(cli, tmp_path, demo_source, pg_databases, prefect_server):
    password = make_engine(pg_databases["warehouse"]).url.password
    home = tmp_path / "prefect-home"
    settings = write_project(
        tmp_path,
        ("airlines", "planes"),
        f"sqlite:///{demo_source}",
        pg_databases["warehouse"],
        extra=("[table:bad_query]\nquery = SELECT nosuchcolumn FROM airlines\nprimary_key = carrier\n"),
    )
    env = {"PREFECT_HOME": str(home)}
    runs = [cli("run", "--all", settings=settings, env=env)]  # a failing flow, a transform and two reports
    assert runs[0].returncode == 1 and "no such column" in runs[0].stdout + runs[0].stderr
    bad_password = sa.make_url(pg_databases["warehouse"]).set(password="wrong-" + password)
    unreachable = write_project(
        tmp_path / "other",
        ("airlines",),
        f"sqlite:///{demo_source}",
        bad_password.render_as_string(hide_password=False),
    )
    runs.append(cli("run", "airlines", settings=unreachable, env=env))  # the command line's own error
    assert runs[1].returncode == 1 and "password authentication failed" in runs[1].stderr
    for out in runs:
        assert password not in out.stdout + out.stderr
    places = (home, prefect_server["home"], tmp_path / "reports")  # the Prefect server keeps the runs' records
    files = [p for place in places for p in place.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in files), "Prefect's run records were not found"
    assert any(p.suffix == ".html" for p in files)
    for path in files:
        assert password.encode() not in path.read_bytes(), f"the password is in {path}"
