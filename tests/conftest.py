"""Shared fixtures: the demo source, throwaway projects, the command line in a subprocess, a real PostgreSQL 15."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from my_package.common.runs import resolve_run
from my_package.dev.demo import DEMO_TABLES, build_demo_source, example_settings
from my_package.tasks.extract import extract_table
from my_package.tasks.load import load_table_atomically
from my_package.tasks.verify import check_staged_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from pg_cluster import start_cluster, stop_cluster  # noqa: E402

PG_PASSWORD = "kit-Secret-pw-4711"  # a throwaway cluster's password; tests check it never leaks
# the project's own derived table, as its settings.ini registers it (the test projects register it the same way)
CARRIER_TRANSFORM = (
    "\n[transform:carrier_monthly_delays]\ninputs = flights, airlines\nprimary_key = carrier, year, month\n"
    "function = my_package.transforms.carrier_monthly_delays:carrier_monthly_delays\n"
)


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory) -> Path:
    "One Prefect home for every flow run of the session (never the user's ~/.prefect)."
    return tmp_path_factory.mktemp("prefect-home")


# ---- services the whole test run shares: started once by whichever test needs them first (on any pytest-xdist
# worker), recorded in a directory every worker sees, and stopped by the run's controller when it ends ----------


def shared_dir(base: Path) -> Path:
    "The directory of the services the whole test run shares (the controller's base temp; a worker's is below it)."
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return root / "shared-services"


def start_once(tmp_path_factory, name: str, start) -> dict:
    "The record of the shared service `name`, started by `start(directory)` if no worker of this run has yet."
    from filelock import FileLock

    directory = shared_dir(tmp_path_factory.getbasetemp())
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(directory / f"{name}.lock"):
        record = directory / f"{name}.json"
        if not record.exists():
            record.write_text(json.dumps(start(directory)))
        return json.loads(record.read_text())


def start_prefect_server(directory: Path) -> dict:
    "A Prefect server on a free loopback port with its state in `directory`."
    from my_package.dev.server import free_port, start_server

    home, port = directory / "prefect-server", free_port()
    # its first start migrates an empty database while the run's other set-up work takes both cores: more room than a
    # user's start gets (a failed session fixture would fail every test of its worker that needs the server)
    process = start_server(home, port, directory / "prefect-server.log", timeout=600)
    return {"api": f"http://127.0.0.1:{port}/api", "home": str(home), "pid": process.pid}


def migrate_prefect_database(directory: Path) -> dict:
    "A Prefect database migrated to the installed Prefect's schema (`prefect server database upgrade`), in `directory`."
    home = directory / "prefect-database"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for name in ("PREFECT_API_URL", "PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        env.pop(name, None)
    prefect = Path(sys.executable).parent / "prefect"
    subprocess.run([str(prefect), "server", "database", "upgrade", "-y"], env=env, check=True, capture_output=True)
    return {"database": str(home / "prefect.db")}


@pytest.fixture(scope="session")
def seed_prefect(tmp_path_factory):
    """`seed(home)`: give a new Prefect home a copy of one database migrated for the whole run, and return `home`.

    A server's first start in an empty home runs Prefect's ~150 migrations: about 12 of its 20 s of CPU. The tests
    that start servers of their own start them from this copy; the session's server (which nbdev_test's notebooks
    use too) and the README's `make run` start from nothing, as a user's first server does.
    """

    def seed(home: Path) -> Path:
        record = start_once(tmp_path_factory, "prefect-database", migrate_prefect_database)
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(record["database"], home / "prefect.db")
        return home

    return seed


def build_worker_venv(directory: Path) -> dict:
    "A virtual environment in `directory` with only the built wheel of the project (and its dependencies) installed."
    from uv_install import uv_install_command

    base = directory / "worker-venv"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(base / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next((base / "dist").glob("my_package-*.whl"))
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(base / "venv")], check=True, timeout=300)
    # uv installs what pip would, from the same sources, in seconds instead of a minute and a half of CPU; no
    # bytecode ahead: the workers' environment has no PYTHONDONTWRITEBYTECODE, so their first runs write it
    installed = subprocess.run(
        uv_install_command([str(wheel)], python=str(base / "venv" / "bin" / "python"), compile_bytecode=False),
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert installed.returncode == 0, installed.stderr[-4000:]
    return {"venv": str(base / "venv")}


@pytest.fixture(scope="session")
def worker_venv(tmp_path_factory) -> Path:
    "A fresh virtual environment with only the built wheel installed, built once for the run's deployment tests."
    return Path(start_once(tmp_path_factory, "worker-venv", build_worker_venv)["venv"])


def start_runner(directory: Path) -> dict:
    "A runner (`python -m my_package.runner --socket`) for every project of the test run, started in the background."
    address, log = directory / "runner.sock", directory / "runner.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "my_package.runner", "--socket", str(address)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    return {"socket": str(address), "pid": process.pid, "log": str(log)}


def runner_ready(record: dict) -> dict:
    "Wait until the tests' runner listens (it imports for seconds); fail naming its log's end when it does not."
    if not wait_for(lambda: Path(record["socket"]).exists(), timeout=300, every=0.1):
        pytest.fail(f"the tests' runner did not start: {Path(record['log']).read_text()[-2000:]}")
    return record


@pytest.fixture(scope="session")
def runner_started(tmp_path_factory) -> dict:
    "The tests' runner, launched once for the whole run; it imports while the Prefect server starts (see `cli`)."
    return start_once(tmp_path_factory, "runner", start_runner)


@pytest.fixture(scope="session")
def runner(runner_started) -> dict:
    "One runner for the whole run's command-line runs, listening: each command forks from it instead of starting afresh."
    return runner_ready(runner_started)


def pytest_sessionfinish(session) -> None:
    "The controller (the only process without PYTEST_XDIST_WORKER) stops the shared services once every test is done."
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    from my_package.dev.server import stop_process

    directory = shared_dir(session.config._tmp_path_factory.getbasetemp())
    if (directory / "runner.json").exists():  # first: its commands use the server
        stop_process(json.loads((directory / "runner.json").read_text())["pid"])
    if (directory / "prefect.json").exists():
        stop_process(json.loads((directory / "prefect.json").read_text())["pid"])
    if (directory / "postgres.json").exists():
        stop_cluster(json.loads((directory / "postgres.json").read_text()))


def cpu_seconds() -> tuple[float, float]:
    "CPU seconds so far of this process, and of the processes it started that have ended and been waited for."
    import resource

    own, ended = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, ended.ru_utime + ended.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """With KIT_TEST_CPU=FILE, append each test's CPU seconds and duration to FILE (`tools/test_cpu.py` sums it up).

    `make test` is bound by CPU on 2 cores, so its time is the CPU its tests spend: this says which tests spend it.
    A test's figure is its worker's CPU during the test, plus that of the processes it started and reaped; a process
    shared by several tests (the run's Prefect server, its runner, PostgreSQL) is in no test's figure.
    """
    record = os.environ.get("KIT_TEST_CPU")
    if not record:
        yield
        return
    (own, ended), started = cpu_seconds(), time.time()
    yield
    (own_after, ended_after), seconds = cpu_seconds(), time.time() - started
    line = {"test": item.nodeid, "own": own_after - own, "children": ended_after - ended, "seconds": seconds}
    with open(record, "a") as out:  # one short write per line: the workers' lines do not interleave
        out.write(json.dumps(line) + "\n")


# The longest tests (seconds in a fresh-clone `make test` on 2 cores, from its junit report; a file's figure stands
# for each of its tests). With `--maxschedchunk 1` pytest-xdist hands each worker two tests to start with and then one at a time: each worker's
# first two are one long test and one short one, and the rest go out longest first, so the workers finish together.
LONGEST = {
    "test_deployments_e2e.py::test_deployments_run_the_wheel_on_two_workers": 576,
    # not yet measured in a suite: 437 s alone, with the wheel's environment (shared with the test above) built in it
    "test_team.py::test_a_teams_production_survives_a_killed_worker_and_server_errors": 500,
    # measured alone on 2 cores: 163 s on a quiet machine, 370 s beside another long test
    "test_waits.py::test_two_runs_at_once_on_one_sqlite_warehouse_queue_table_by_table_and_say_so": 300,
    "test_readme.py::test_the_readme_commands_work_in_order_on_a_fresh_clone": 234,
    "test_truth.py::test_ctrl_c_cancels_a_load_and_a_second_one_leaves_what_check_finds_and_the_next_run_cleans": 229,
    # not yet measured in a suite: nbdev_test alone takes 76 s (make nbtest), about twice that among the others
    "test_notebook_examples.py::test_every_notebook_passes_nbdev_test": 150,
    "test_end_to_end.py::test_run_all_on_the_embedded_default": 146,
    "test_fast_loop.py::test_a_server_belongs_to_its_project_and_a_taken_port_is_said": 143,
    "test_end_to_end.py::test_sqlite_source_into_a_postgresql_warehouse": 139,
    "test_transforms.py::test_a_data_scientist_adds_a_derived_table_from_a_notebook": 134,
    "test_reports.py::test_reports_render_only_when_what_they_show_changed": 132,
    # measured alone on a loaded 2-core machine (load 10-16), not yet in a suite
    "test_outcomes.py::test_every_outcome_shows_in_the_index_and_the_report_within_seconds": 275,
    "test_reports.py::test_the_generic_report_renders_every_type_on_every_warehouse": 153,
    "test_outcomes.py": 150,
    "test_truth.py::test_a_report_that_fails_in_the_background_is_seen_everywhere": 125,
    "test_fast_loop.py::test_run_typed_directly_keeps_prefect_out_of_home_and_quiet": 111,
    "test_fast_loop.py::test_one_local_server_serves_every_command_and_the_kit_runs_without_it": 104,
    "test_lineage.py::test_history_freshness_and_the_tree_after_real_runs": 63,
    # not yet measured in a suite: the runner's, from their runs beside other sessions' tests (about half of that idle)
    "test_runner.py::test_an_exported_edit_and_a_settings_change_run_through_a_runner_started_before_them": 120,
    "test_truth.py::test_a_runner_killed_during_a_load_is_said_at_once_and_its_load_is_as_after_a_crash": 100,
    "test_runner.py": 60,
    "test_table_notebooks.py::test_a_tables_own_notebook_is_scaffolded_edited_and_rendered": 49,
    "test_daily_loop.py::test_a_new_table_in_one_step_as_a_new_user_would": 40,
    "test_browser.py": 30,
    "test_truth.py": 28,
    "test_end_to_end.py": 25,
    "test_waits.py": 20,
}


def expected_seconds(item) -> int:
    "The test's expected duration: its own entry in LONGEST, else its file's, else 0."
    name = item.nodeid.rsplit("/", 1)[-1]
    return LONGEST.get(name.split("[")[0], LONGEST.get(item.path.name, 0))


def pytest_collection_modifyitems(session, config, items) -> None:
    "Longest first, each worker's first two tests one long and one short (see LONGEST); the order is stable."
    ranked = sorted(items, key=expected_seconds, reverse=True)  # stable: collection order among equals
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and len(ranked) >= 2 * workers:
        longest, shortest = ranked[:workers], ranked[len(ranked) - workers :][::-1]
        first = [test for pair in zip(longest, shortest, strict=True) for test in pair]
        ranked = first + ranked[workers : len(ranked) - workers]
    items[:] = ranked


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory) -> dict:
    "One Prefect server on 127.0.0.1 for the whole run's command-line runs (each would otherwise start its own)."
    record = start_once(tmp_path_factory, "prefect", start_prefect_server)
    return {"api": record["api"], "home": Path(record["home"])}


def build_shared_demo_source(directory: Path) -> dict:
    "The full nycflights13 demo source (SQLite) in `directory`."
    path = directory / "demo-source.db"
    build_demo_source(f"sqlite:///{path}")
    return {"path": str(path)}


@pytest.fixture(scope="session")
def demo_source(tmp_path_factory) -> Path:
    "The full nycflights13 demo source (SQLite), built once for the whole run (6 CPU-s); tests copy it, never change it."
    return Path(start_once(tmp_path_factory, "demo-source", build_shared_demo_source)["path"])


def fresh_clone(dest: Path) -> Path:
    "The project as a fresh clone has it: the files git tracks (or will, once committed), modification times kept."
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        if (ROOT / name).is_file():  # a file deleted but not yet staged is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def write_project(directory: Path, tables: tuple[str, ...], source: str, warehouse: str, extra: str = "") -> Path:
    "Write a settings.ini registering the demo `tables` (plus `extra` text) into `directory`; return its path."
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "settings.ini"
    path.write_text(example_settings(tables, source, warehouse) + extra)
    return path


@pytest.fixture
def cli(prefect_home, runner_started, prefect_server):
    "Run `python -m my_package ARGS` in a subprocess against a settings file (the session's Prefect server and runner)."

    def run(*args: str, settings: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
        runner = runner_ready(runner_started)  # started before the server: ready by now, as a rule
        full_env = {
            **os.environ,
            "MY_PACKAGE_SETTINGS": str(settings),
            "PREFECT_HOME": str(prefect_home),
            "PREFECT_API_URL": prefect_server["api"],
            "MY_PACKAGE_RUNNER": runner["socket"],
            "COLUMNS": "200",
            **(env or {}),
        }
        return subprocess.run(
            [sys.executable, "-m", "my_package", *args],
            cwd=settings.parent,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def wait_for(condition, timeout: float = 120, every: float = 0.05) -> bool:
    "Poll `condition` until it is true (True) or `timeout` seconds pass (False)."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def table_rows(engine: sa.Engine, table: str) -> list[tuple]:
    "Every row of `table`, as Python values, in a backend-independent order."
    t = sa.Table(table, sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sa.select(t))]
    return sorted(rows, key=lambda r: tuple(str(v) for v in r))


def row_counts(engine: sa.Engine, table: str) -> Counter:
    "Every row of `table`, as Python values, with how often it is there: two tables compare exactly, in no order."
    # under half the CPU of `table_rows`, which sorts the rows by their text: flights' 336,776 rows 1.2 CPU-s, not 2.5
    t = sa.Table(table, sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        return Counter(map(tuple, conn.execute(sa.select(t))))


def assert_same_tables(source: sa.Engine, warehouse: sa.Engine, tables: tuple[str, ...] = DEMO_TABLES) -> None:
    "Each table in the warehouse holds exactly the source's rows (same values, same count)."
    for table in tables:
        src, wh = row_counts(source, table), row_counts(warehouse, table)
        assert wh.total() == src.total(), f"{table}: {wh.total()} rows in the warehouse, {src.total()} in the source"
        assert wh == src, f"{table}: warehouse rows differ from the source"


# ---- PostgreSQL 15: a throwaway cluster on a free loopback port, stopped at the end even when tests fail ----


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> dict:
    "A running PostgreSQL 15 cluster with password authentication (one for the whole run): host, port, user, password."
    try:
        return start_once(tmp_path_factory, "postgres", lambda directory: start_cluster(PG_PASSWORD))
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.fixture
def pg_databases(postgres) -> Iterator[dict[str, str]]:
    "Fresh `source` and `warehouse` databases for one test; yields their SQLAlchemy URLs."
    admin = sa.create_engine(
        f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:{postgres['port']}/postgres",
        isolation_level="AUTOCOMMIT",
    )
    suffix = f"{os.getpid()}_{time.monotonic_ns()}"
    names = {role: f"{role}_{suffix}" for role in ("source", "warehouse")}
    with admin.connect() as conn:
        for name in names.values():
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield {
        role: f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:{postgres['port']}/{name}"
        for role, name in names.items()
    }
    with admin.connect() as conn:
        for name in names.values():
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


# ---- a source and a warehouse on every pair of backends, and the steps of a table flow without Prefect ------

BACKENDS = [("sqlite", "sqlite"), ("postgresql", "postgresql"), ("sqlite", "postgresql"), ("postgresql", "sqlite")]
BACKENDS += [("sqlite", "duckdb"), ("postgresql", "duckdb"), ("duckdb", "sqlite"), ("duckdb", "postgresql")]


@pytest.fixture(params=BACKENDS, ids=lambda p: f"{p[0]}-to-{p[1]}")
def ends(request, tmp_path) -> dict[str, str]:
    "Source and warehouse URLs for one backend pair (PostgreSQL databases are fresh for each test)."
    urls = {
        "sqlite": {role: f"sqlite:///{tmp_path / role}.db" for role in ("source", "warehouse")},
        "duckdb": {role: f"duckdb:///{tmp_path / role}.duckdb" for role in ("source", "warehouse")},
    }
    if "postgresql" in request.param:
        urls["postgresql"] = request.getfixturevalue("pg_databases")
    return {"source": urls[request.param[0]]["source"], "warehouse": urls[request.param[1]]["warehouse"]}


@pytest.fixture
def project(ends, tmp_path, monkeypatch):
    "Write settings.ini with the given table sections for these ends; return a function that does it."

    def write(sections: str, chunk_size: int = 2) -> None:
        text = (
            f"[pipeline]\nchunk_size = {chunk_size}\n[profile:default]\n"
            f"source = {ends['source']}\nwarehouse = {ends['warehouse']}\n{sections}"
        )
        (tmp_path / "settings.ini").write_text(text)
        monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(tmp_path / "settings.ini"))

    return write


def load(table: str) -> int:
    "extract -> check -> load, the steps of the table's flow, without Prefect's server."
    run = resolve_run(table)
    staged = extract_table.fn(run)
    check_staged_table.fn(run, staged)
    return load_table_atomically.fn(run, staged)


# ---- a webhook receiver on 127.0.0.1 (alerts) ----------------------------------------------------------------


class Webhook:
    "An HTTP server on 127.0.0.1 that records every JSON body POSTed to it."

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


HEAVY_MODULES = ("prefect", "pandas", "pyarrow", "papermill")


def heavy_imports(
    command: list[str], settings: Path, home: Path, env: dict | None = None, timeout: int = 120
) -> subprocess.CompletedProcess:
    "Run the CLI `command` in a fresh process (`env` added); its last stdout line lists the `HEAVY_MODULES` it imported."
    code = (
        "import sys\nfrom my_package.cli import main\n"
        f"try:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"MY_PACKAGE_SETTINGS": str(settings), "PATH": "/usr/bin:/bin", "HOME": str(home), **(env or {})},
    )
