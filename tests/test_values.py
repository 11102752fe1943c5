"""Values that do not fit their column's type (SQLite's 'n/a' in a REAL column): one verdict on every path."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import table_rows

import my_package.common.loads as loads
from my_package.common.db import make_engine
from my_package.common.integrity import CheckResult
from my_package.common.runs import resolve_run
from my_package.common.warehouses.duckdb import DuckDBWarehouse
from my_package.common.warehouses.sqlite import SQLiteWarehouse
from my_package.errors import QualityCheckError
from my_package.flows.factory import dropped_on_failure
from my_package.tasks.extract import extract_table
from my_package.tasks.load import load_table_atomically
from my_package.tasks.verify import check_staged_table

# Misfits only arise in a SQLite source (PostgreSQL's types are strict): into a SQLite, a PostgreSQL and a DuckDB
# warehouse
WAREHOUSES = [("sqlite", "sqlite"), ("sqlite", "postgresql"), ("sqlite", "duckdb")]
# the same source table twice: as it is (SQLite -> SQLite: the copy inside SQLite), and with a per-batch transform
# that changes nothing (copy.copy of each DataFrame), which sends every pair through the Arrow batch path
TABLES = ("copied", "batched")
FIX = "fix them in the source or set `bad_values = null` to land them as NULL"
HOSTILE = 'it\'s "odd"; DROP TABLE sentinel; --'


@pytest.fixture(params=WAREHOUSES, ids=lambda p: f"{p[0]}-to-{p[1]}")
def ends(request, tmp_path) -> dict[str, str]:
    "A SQLite source, and a SQLite, DuckDB or (fresh) PostgreSQL warehouse; `project` (conftest) writes their settings."
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    if request.param[1] == "duckdb":
        warehouse = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    if request.param[1] == "postgresql":
        warehouse = request.getfixturevalue("pg_databases")["warehouse"]
    return {"source": f"sqlite:///{tmp_path / 'source.db'}", "warehouse": warehouse}


def sections(source_table: str, extra: str = "") -> str:
    "The two table sections of TABLES, both reading `source_table` (plus `extra` keys)."
    return "".join(
        f"[table:{name}]\nsource_table = {source_table}\nprimary_key = id\n{extra}"
        + ("transform = copy:copy\n" if name == "batched" else "")
        for name in TABLES
    )


@pytest.fixture
def paths(monkeypatch) -> dict[str, list[str]]:
    "Records the paths that staged each table, in turn: the copy inside SQLite or DuckDB, or Arrow batches."
    taken, attach, scan, batches = {}, SQLiteWarehouse.attach_copy, DuckDBWarehouse.scan_copy, loads.stage_batches

    def attach_spy(warehouse, path, stmt, staging, schema, **kwargs):
        taken.setdefault(staging, []).append("attach")
        return attach(warehouse, path, stmt, staging, schema, **kwargs)

    def scan_spy(warehouse, found, staging, schema):
        rows = scan(warehouse, found, staging, schema)
        taken.setdefault(staging, []).append("scan" if rows is not None else "scan gave way")
        return rows

    def batches_spy(engine, staging, *args, **kwargs):
        taken.setdefault(staging, []).append("batches")
        return batches(engine, staging, *args, **kwargs)

    monkeypatch.setattr(SQLiteWarehouse, "attach_copy", attach_spy)
    monkeypatch.setattr(DuckDBWarehouse, "scan_copy", scan_spy)
    monkeypatch.setattr(loads, "stage_batches", batches_spy)
    return taken


def run(name: str) -> list[CheckResult]:
    "extract -> check -> load, as the table's flow runs them: a step that fails drops the staging table."
    table_run = resolve_run(name)
    with dropped_on_failure(table_run):
        staged = extract_table.fn(table_run)
        results = check_staged_table.fn(table_run, staged)
        load_table_atomically.fn(table_run, staged)
    return results


def failure(name: str) -> str:
    "The message of the QualityCheckError that loading `name` raises."
    with pytest.raises(QualityCheckError) as failed:
        run(name)
    return str(failed.value)


def expected_failure(name: str, detail: str, kept: bool = True) -> str:
    "The whole message of a load of `name` that fails only on values that do not fit (`detail`); `kept`: a previous table stays."
    return f"Quality check failed for table {name!r}: FAIL {name}: values fit their columns ({detail}). " + (
        "The previous table was left in place." if kept else "Nothing was published: there is no previous table."
    )


def no_staging_left(warehouse: sa.Engine) -> bool:
    "True when the warehouse holds no staging table."
    return not [t for t in sa.inspect(warehouse).get_table_names() if t.startswith("_staging_")]


def make_prices(source: sa.Engine) -> None:
    "A source table `prices` of six rows whose REAL column holds numbers only."
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE prices (id INTEGER PRIMARY KEY, price REAL, label TEXT)")
        conn.exec_driver_sql("INSERT INTO prices VALUES (?, ?, ?)", [(i, i / 4, f"item {i}") for i in range(1, 7)])


def spoil_prices(source: sa.Engine) -> None:
    "Put text into three rows of the REAL column (SQLite keeps it as text)."
    with source.begin() as conn:
        conn.exec_driver_sql("UPDATE prices SET price = 'n/a' WHERE id IN (2, 5)")
        conn.exec_driver_sql("UPDATE prices SET price = '--' WHERE id = 3")


def test_a_text_in_a_real_column_fails_alike_on_every_path(ends, project, paths):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    make_prices(source)
    project(sections("prices"), chunk_size=2)
    for name in TABLES:
        run(name)
    before = {name: table_rows(warehouse, name) for name in TABLES}
    spoil_prices(source)
    detail = f"price: 3 values that are not numbers, e.g. '--', 'n/a'; {FIX}"
    for name in TABLES:
        assert failure(name) == expected_failure(name, detail)
        assert table_rows(warehouse, name) == before[name], f"{name}: the previous table was changed"
    assert no_staging_left(warehouse)
    copied = {  # the first run, then the spoiled one
        "sqlite": ["attach", "attach"],
        "duckdb": ["scan", "scan gave way", "batches"],  # DuckDB's scanner refuses the text: Arrow judges it
        "postgresql": ["batches", "batches"],
    }[ends["warehouse"].split(":")[0].split("+")[0]]
    assert paths == {"_staging_copied": copied, "_staging_batched": ["batches", "batches"]}


def test_bad_values_null_lands_nulls_and_warns(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    make_prices(source)
    spoil_prices(source)
    project(sections("prices", "bad_values = null\n"), chunk_size=2)
    for name in TABLES:
        checked = {r.check: r for r in run(name)}["values fit their columns"]
        assert str(checked) == (
            f"WARN {name}: values fit their columns "
            "(price: 3 values that are not numbers, e.g. '--', 'n/a'; set to NULL, as `bad_values = null` asks)"
        )
        assert (checked.blocking, checked.failing, checked.samples) == (False, 3, ("--", "n/a"))
        prices = {row[0]: row[1] for row in table_rows(warehouse, name)}
        assert prices == {1: 0.25, 2: None, 3: None, 4: 1.0, 5: None, 6: 1.5}, name
    assert no_staging_left(warehouse)


def test_text_in_timestamp_integer_date_and_boolean_columns_fails_alike(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    with source.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE readings (id INTEGER PRIMARY KEY, taken TIMESTAMP, quantity INTEGER, day DATE, flag BOOLEAN)"
        )
        conn.exec_driver_sql(
            "INSERT INTO readings VALUES (?, ?, ?, ?, ?)",
            [
                (1, "2024-01-01 10:00:00", 1, "2024-01-01", 1),
                (2, "soon", 2, "2024-01-02 10:00:00", 0),
                (3, "2024-01-02", "many", None, "yes"),
                (4, "2024-13-45 99:00:00", 2.5, "2024-02-30", 2),  # 2.5 stays a REAL in SQLite's INTEGER column
                (5, None, None, None, None),
            ],
        )
    project(sections("readings"), chunk_size=2)
    detail = (
        "taken: 2 values that are not timestamps, e.g. '2024-13-45 99:00:00', 'soon'; "
        "quantity: 2 values that are not integers, e.g. '2.5', 'many'; "
        "day: 2 values that are not dates, e.g. '2024-01-02 10:00:00', '2024-02-30'; "
        f"flag: 1 value that is not a boolean, e.g. 'yes'; {FIX}"
    )
    for name in TABLES:  # a first run: there is no previous table to speak of
        assert failure(name) == expected_failure(name, detail, kept=False)
        assert not sa.inspect(warehouse).has_table(name), f"{name} was published"
    assert no_staging_left(warehouse)


def test_a_hostile_column_name_is_named_and_nothing_is_executed(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    hostile = sa.Table(
        "hostile", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column(HOSTILE, sa.Float)
    )
    hostile.create(source)
    with source.begin() as conn:
        conn.exec_driver_sql("INSERT INTO hostile VALUES (?, ?)", [(1, 1.5), (2, "'; DROP TABLE sentinel; --")])
    for engine in (source, warehouse):
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE sentinel (x INTEGER)")
    project(sections("hostile"))
    detail = f'{HOSTILE}: 1 value that is not a number, e.g. "\'; DROP TABLE sentinel; --"; {FIX}'
    for name in TABLES:  # a first run: there is no previous table to speak of
        assert failure(name) == expected_failure(name, detail, kept=False)
    project(sections("hostile", "bad_values = null\n"))  # the misfit becomes NULL by an UPDATE naming the column
    for name in TABLES:
        run(name)
        assert table_rows(warehouse, name) == [(1, 1.5), (2, None)]
    for engine in (source, warehouse):
        assert sa.inspect(engine).has_table("sentinel"), "a name was executed"
    assert no_staging_left(warehouse)


def test_a_run_fails_on_misfits_or_warns_as_the_table_asks(cli, tmp_path):
    source = make_engine(f"sqlite:///{tmp_path / 'source.db'}")
    make_prices(source)
    settings = tmp_path / "settings.ini"
    sections_text = sections("prices").replace("transform = copy:copy\n", "transform = copy:copy\nbad_values = null\n")
    settings.write_text(
        "[pipeline]\nchunk_size = 2\n[profile:default]\nsource = sqlite:///source.db\n"
        f"warehouse = sqlite:///warehouse.db\n{sections_text}"
    )
    assert cli("run", "--all", "--no-reports", settings=settings).returncode == 0
    warehouse = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    before = table_rows(warehouse, "copied")
    spoil_prices(source)
    out = cli("run", "--all", "--no-reports", settings=settings)
    printed = out.stdout + out.stderr
    assert out.returncode == 1, printed
    failed = f"FAIL copied: values fit their columns (price: 3 values that are not numbers, e.g. '--', 'n/a'; {FIX})"
    assert failed in printed and "batched: ok (6 rows" in printed and "1 warn" in printed, printed
    # the warning's own line under the table's: which check, which column, how many
    assert "\n    warn values fit their columns: price: 3 values that are not numbers" in printed, printed
    assert table_rows(warehouse, "copied") == before
    assert [row[1] for row in table_rows(warehouse, "batched")] == [0.25, None, None, 1.0, None, 1.5]
    assert no_staging_left(warehouse)
