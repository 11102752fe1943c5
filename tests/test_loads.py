"""Loads on both backends: exact round trips, atomic full refresh, incremental upserts, schema drift, checks."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
import sqlalchemy as sa
from conftest import load, table_rows

from my_package.common.bookkeeping import read_state
from my_package.common.db import make_engine, warehouse_for
from my_package.common.runs import resolve_run
from my_package.errors import QualityCheckError, SchemaDriftError
from my_package.tasks.extract import extract_table
from my_package.tasks.load import load_table_atomically
from my_package.tasks.verify import check_staged_table

UTC = dt.UTC


def normalised(rows: list[tuple], naive_utc: bool) -> list[tuple]:
    "Rows with aware timestamps as naive UTC when one end is SQLite (it has no time zone type)."
    if not naive_utc:
        return rows
    out = [
        tuple(v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, dt.datetime) and v.tzinfo else v for v in r)
        for r in rows
    ]
    return sorted(out, key=lambda r: tuple(str(v) for v in r))


def assert_same(ends: dict[str, str], source_table: str, target: str) -> None:
    "The warehouse table holds exactly the source table's rows."
    sqlite_end = any(u.startswith("sqlite") for u in ends.values())
    src = normalised(table_rows(make_engine(ends["source"]), source_table), sqlite_end)
    wh = normalised(table_rows(make_engine(ends["warehouse"]), target), sqlite_end)
    assert wh == src


# ---- exact round trip of awkward values ---------------------------------------------------------------------

ODD = sa.Table(
    "odd cases",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("order", sa.Text),
    sa.Column("select", sa.Text),
    sa.Column("a name", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("amount", sa.Numeric(12, 3)),
    sa.Column("ratio", sa.Float),
    sa.Column("happened", sa.DateTime(timezone=True)),
    sa.Column("day", sa.Date),
)
ODD_ROWS = [
    {
        "id": 1,
        "order": "first",
        "select": "*",
        "a name": "x",
        "note": "naïve café ✓ 日本語 🚀",
        "amount": decimal.Decimal("1234.567"),
        "ratio": 1.5,
        "happened": dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC),
        "day": dt.date(2024, 3, 1),
    },
    {
        "id": 2,
        "order": "",
        "select": "'; DROP TABLE x; --",
        "a name": None,
        "note": "",
        "amount": decimal.Decimal("-0.001"),
        "ratio": 1e-300,
        "happened": dt.datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),
        "day": None,
    },
    {
        "id": 3,
        "order": None,
        "select": None,
        "a name": None,
        "note": None,
        "amount": None,
        "ratio": None,
        "happened": None,
        "day": dt.date(1999, 12, 31),
    },
]


def test_awkward_values_survive_the_round_trip_exactly(ends, project):
    source = make_engine(ends["source"])
    ODD.create(source)
    with source.begin() as conn:
        conn.execute(sa.insert(ODD), ODD_ROWS)
    project("[table:odd]\nsource_table = odd cases\nprimary_key = id\n")
    assert load("odd") == 3
    assert_same(ends, "odd cases", "odd")
    types = {c["name"]: c["type"] for c in sa.inspect(make_engine(ends["warehouse"])).get_columns("odd")}
    assert isinstance(types["happened"], sa.DateTime) and isinstance(types["amount"], sa.Numeric)
    assert isinstance(types["day"], sa.Date)
    if ends["source"].startswith("postgresql") and ends["warehouse"].startswith("postgresql"):
        assert types["happened"].timezone, "timestamptz stays timestamptz"


def test_an_empty_table_loads_as_an_empty_table(ends, project):
    ODD.create(make_engine(ends["source"]))
    project("[table:odd]\nsource_table = odd cases\nprimary_key = id\n")
    assert load("odd") == 0
    columns = [c["name"] for c in sa.inspect(make_engine(ends["warehouse"])).get_columns("odd")]
    assert columns == [c.name for c in ODD.columns]


# ---- full refresh: atomic -------------------------------------------------------------------------------------

ITEMS = sa.Table(
    "items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("price", sa.Float),
    sa.Column("updated_at", sa.DateTime),
)


def fill_items(engine: sa.Engine, ids: range, when: dt.datetime = dt.datetime(2024, 1, 1)) -> None:
    "Insert items with the given ids into the source."
    with engine.begin() as conn:
        conn.execute(
            sa.insert(ITEMS), [{"id": i, "name": f"item {i}", "price": i / 4, "updated_at": when} for i in ids]
        )


def test_a_full_refresh_that_fails_midway_leaves_the_previous_table(ends, project, monkeypatch, tmp_path):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    ITEMS.create(source)
    fill_items(source, range(1, 21))
    # a per-batch transform (here: none at all) sends every pair through the batch path, where a load can die
    # between batches; SQLite -> SQLite otherwise copies in a single INSERT ... SELECT
    (tmp_path / "kit_identity.py").write_text("def same(frame):\n    return frame\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    project("[table:items]\nsource_table = items\nprimary_key = id\ntransform = kit_identity:same\n", chunk_size=4)
    assert load("items") == 20
    before = table_rows(warehouse, "items")
    fill_items(source, range(21, 41))

    # the warehouse's own way of appending a batch, made to fail after two
    kind, calls = type(warehouse_for(warehouse)), []
    real_append = kind.append_batch

    def append_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # the first two batches land in staging, then the load dies
            raise RuntimeError("injected failure after two batches")
        return real_append(*args, **kwargs)

    monkeypatch.setattr(kind, "append_batch", append_then_fail)
    with pytest.raises(RuntimeError, match="injected failure"):
        load("items")
    assert table_rows(warehouse, "items") == before  # intact and complete
    assert len(calls) == 3

    monkeypatch.setattr(kind, "append_batch", real_append)
    assert load("items") == 40
    assert_same(ends, "items", "items")


# ---- incremental ----------------------------------------------------------------------------------------------

INCREMENTAL = "[table:items]\nsource_table = items\nprimary_key = id\nmode = incremental\nwatermark = updated_at\n"


def test_incremental_inserts_updates_and_noop_rerun(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    ITEMS.create(source)
    fill_items(source, range(1, 11))
    project(INCREMENTAL, chunk_size=3)
    assert load("items") == 10
    assert_same(ends, "items", "items")
    first_mark = read_state(warehouse, "items")["watermark"]

    fill_items(source, range(11, 14), when=dt.datetime(2024, 1, 2))
    with source.begin() as conn:
        conn.execute(
            sa.update(ITEMS).where(ITEMS.c.id.in_([2, 5])).values(name="renamed", updated_at=dt.datetime(2024, 1, 3))
        )
    run = resolve_run("items")
    staged = extract_table.fn(run)
    assert staged.rows == 5  # only the three new rows and the two updated ones
    check_staged_table.fn(run, staged)
    assert load_table_atomically.fn(run, staged) == 13
    assert_same(ends, "items", "items")
    second_mark = read_state(warehouse, "items")["watermark"]
    assert second_mark != first_mark and "2024-01-03" in second_mark

    before = table_rows(warehouse, "items")
    rerun = extract_table.fn(run)
    assert rerun.rows == 0
    check_staged_table.fn(run, rerun)
    assert load_table_atomically.fn(run, rerun) == 13
    assert table_rows(warehouse, "items") == before
    assert read_state(warehouse, "items")["watermark"] == second_mark


def test_duplicate_keys_in_an_incremental_table_fail_the_check(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    dupes = sa.Table(
        "dupes", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("v", sa.Text), sa.Column("ts", sa.DateTime)
    )
    dupes.create(source)
    with source.begin() as conn:
        conn.execute(sa.insert(dupes), [{"id": 1, "v": "a", "ts": dt.datetime(2024, 1, 1)}])
    project("[table:dupes]\nsource_table = dupes\nprimary_key = id\nmode = incremental\nwatermark = ts\n")
    assert load("dupes") == 1
    with source.begin() as conn:
        conn.execute(sa.insert(dupes), [{"id": 2, "v": "b", "ts": dt.datetime(2024, 1, 2)}] * 2)
    with pytest.raises(QualityCheckError, match=r"table 'dupes'.*primary key unique"):
        load("dupes")
    assert table_rows(warehouse, "dupes") == [(1, "a", dt.datetime(2024, 1, 1))]


# ---- schema drift ---------------------------------------------------------------------------------------------


def test_a_new_source_column_fails_clearly_by_default(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    ITEMS.create(source)
    fill_items(source, range(1, 6))
    project("[table:items]\nsource_table = items\nprimary_key = id\n")
    load("items")
    before = table_rows(warehouse, "items")
    with source.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE items ADD COLUMN colour TEXT")
    with pytest.raises(
        SchemaDriftError, match=r"Schema drift in table 'items': added: colour.*schema_drift = add_columns"
    ):
        load("items")
    assert table_rows(warehouse, "items") == before


def test_add_columns_policy_adds_the_new_column_to_an_incremental_table(ends, project):
    source = make_engine(ends["source"])
    ITEMS.create(source)
    fill_items(source, range(1, 6))
    project(INCREMENTAL + "schema_drift = add_columns\n")
    load("items")
    with source.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE items ADD COLUMN colour TEXT")
        conn.exec_driver_sql("INSERT INTO items VALUES (6, 'item 6', 1.5, '2024-02-01 00:00:00', 'red')")
    assert load("items") == 6
    assert_same(ends, "items", "items")


def test_a_changed_column_type_fails_even_with_add_columns(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    ITEMS.create(source)
    fill_items(source, range(1, 6))
    project("[table:items]\nsource_table = items\nprimary_key = id\nschema_drift = add_columns\n")
    load("items")
    with source.begin() as conn:  # price becomes text (SQLite cannot alter a type: rebuild the table)
        conn.exec_driver_sql(
            "CREATE TABLE items2 (id INTEGER PRIMARY KEY, name TEXT, price TEXT, updated_at TIMESTAMP)"
        )
        conn.exec_driver_sql("INSERT INTO items2 SELECT id, name, CAST(price AS TEXT), updated_at FROM items")
        conn.exec_driver_sql("DROP TABLE items")
        conn.exec_driver_sql("ALTER TABLE items2 RENAME TO items")
    with pytest.raises(SchemaDriftError, match=r"retyped: price \(float -> text\)"):
        load("items")
    assert len(table_rows(warehouse, "items")) == 5
