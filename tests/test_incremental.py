"""What an incremental load cannot see is said: NULL watermarks are loaded, and the table is reconciled with its source."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
import sqlalchemy as sa
from conftest import load, table_rows

from my_package.common.bookkeeping import latest_checks, read_state
from my_package.common.db import make_engine
from my_package.common.runs import resolve_run
from my_package.errors import SchemaDriftError
from my_package.tasks.extract import extract_table
from my_package.tasks.load import load_table_atomically
from my_package.tasks.verify import check_staged_table

ITEMS = sa.Table(
    "items",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("updated_at", sa.DateTime),
)
INCREMENTAL = "[table:items]\nsource_table = items\nprimary_key = id\nmode = incremental\nwatermark = updated_at\n"
DAY = dt.datetime(2024, 1, 1)


def add(engine: sa.Engine, *rows: tuple) -> None:
    "Insert (id, name, updated_at) rows into the source's items."
    with engine.begin() as conn:
        conn.execute(sa.insert(ITEMS), [dict(zip(("id", "name", "updated_at"), r, strict=True)) for r in rows])


def reconciled(table: str) -> tuple[int, sa.engine.Row | None]:
    "Load `table` as its flow does; return the live rows and its `rows match the source` result."
    run = resolve_run(table)
    staged = extract_table.fn(run)
    results = check_staged_table.fn(run, staged)
    rows = load_table_atomically.fn(run, staged)
    return rows, next((r for r in results if r.check == "rows match the source"), None)


def test_rows_whose_watermark_is_null_are_loaded_not_skipped(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    ITEMS.create(source)
    add(source, *[(i, f"item {i}", DAY + dt.timedelta(days=i)) for i in range(1, 4)])
    project(INCREMENTAL)
    assert load("items") == 3
    mark = read_state(warehouse, "items")["watermark"]
    add(source, (4, "no watermark yet", None))  # added later, its updated_at not set
    assert load("items") == 4
    with source.begin() as conn:  # it changes, and still has no watermark: the change arrives
        conn.execute(sa.update(ITEMS).where(ITEMS.c.id == 4).values(name="named later"))
    assert load("items") == 4
    assert [r[:2] for r in table_rows(warehouse, "items")][-1] == (4, "named later")
    assert read_state(warehouse, "items")["watermark"] == mark  # a NULL moves no watermark
    assert [r[:2] for r in table_rows(warehouse, "items")] == [r[:2] for r in table_rows(source, "items")]


def test_an_incremental_load_warns_when_the_table_and_its_source_differ(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    ITEMS.create(source)
    add(source, *[(i, f"item {i}", DAY + dt.timedelta(days=i)) for i in range(1, 4)])
    project(INCREMENTAL)
    rows, result = reconciled("items")
    assert (rows, result.status) == (3, "PASS") and result.detail == "3 rows, as in the source"

    add(source, (5, "late", DAY))  # below the stored watermark: an incremental load does not read it
    rows, result = reconciled("items")
    assert rows == 3 and (result.status, result.severity, result.failing) == ("WARN", "warn", 1)
    assert result.detail.startswith("3 rows, the source has 4: 1 missing"), result.detail
    assert "a full load catches up (`mode = full` for one run)" in result.detail

    with source.begin() as conn:
        conn.execute(sa.delete(ITEMS).where(ITEMS.c.id.in_([1, 2])))  # deleted in the source: the table keeps them
    rows, result = reconciled("items")
    assert rows == 3 and result.status == "WARN"
    assert result.detail.startswith("3 rows, the source has 2: 1 more"), result.detail

    with warehouse.begin() as conn:  # the fix it names: the table dropped, the next load reads everything
        conn.execute(sa.text("DROP TABLE items"))
    rows, result = reconciled("items")
    assert (rows, result.status) == (2, "PASS")
    assert [r[:2] for r in table_rows(warehouse, "items")] == [(3, "item 3"), (5, "late")]


def test_the_reconcile_warning_shows_in_the_run_its_log_and_its_report(cli, tmp_path, demo_source):
    source = make_engine(f"sqlite:///{tmp_path / 'source.db'}")
    ITEMS.create(source)
    add(source, *[(i, f"item {i}", DAY + dt.timedelta(days=i)) for i in range(1, 6)])
    settings = tmp_path / "settings.ini"
    settings.write_text(
        f"[profile:default]\nsource = sqlite:///{tmp_path / 'source.db'}\n"
        f"warehouse = sqlite:///{tmp_path / 'warehouse.db'}\n{INCREMENTAL}"
    )
    assert cli("run", "items", "--no-reports", settings=settings).returncode == 0
    add(source, (6, "late", DAY), (7, "new", DAY + dt.timedelta(days=9)))  # one late, one past the watermark
    ran = cli("run", "items", "--no-reports", settings=settings, env={"COLUMNS": "80"})
    assert ran.returncode == 0, ran.stderr
    lines = ran.stderr.splitlines()
    [progress] = [line for line in lines if line.startswith("  items: ok")]
    assert progress.startswith("  items: ok (1 row read, 6 in the table, "), progress  # not "ok (6 rows"
    assert "checks: 3 ok, 1 warn" in progress
    [warned] = [line for line in lines if line.startswith("    warn ")]
    assert warned.startswith("    warn rows match the source: 6 rows, the source has 7: 1 missing"), warned
    assert len(warned) <= 80
    assert "1 warn" in " ".join(ran.stdout.split() + ran.stderr.split())  # the summary's row
    [logged] = [c for c in latest_checks(make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}"), "items")
                if c["check_name"] == "rows match the source"]  # fmt: skip
    assert (logged["status"], logged["failing"]) == ("WARN", 1)
    report = cli("report", "items", settings=settings)
    assert report.returncode == 0, report.stderr
    page = " ".join((tmp_path / "reports" / "default" / "items.html").read_text().split())
    assert "rows match the source" in page and "the source has 7" in page
    shutil.rmtree(tmp_path / "reports")


def test_a_retyped_key_of_an_incremental_table_is_drift_not_a_failed_comparison(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    ITEMS.create(source)
    add(source, *[(i, f"item {i}", DAY + dt.timedelta(days=i)) for i in range(1, 4)])
    project(INCREMENTAL)
    assert load("items") == 3
    retyped = sa.Table("items", sa.MetaData(), sa.Column("id", sa.Text, primary_key=True), *[
        sa.Column(c.name, c.type) for c in ITEMS.columns if c.name != "id"])  # fmt: skip
    with source.begin() as conn:
        conn.execute(sa.text("DROP TABLE items"))
    retyped.create(source)
    with source.begin() as conn:
        conn.execute(sa.insert(retyped), [{"id": "A4", "name": "item 4", "updated_at": DAY + dt.timedelta(days=9)}])
    with pytest.raises(SchemaDriftError, match=r"retyped: id \(integer -> text\)"):
        load("items")
    assert len(table_rows(warehouse, "items")) == 3


def test_a_full_load_for_one_run_catches_an_incremental_table_up_and_keeps_its_watermark(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    ITEMS.create(source)
    add(source, *[(i, f"item {i}", DAY + dt.timedelta(days=i)) for i in range(1, 4)])
    project(INCREMENTAL)
    assert load("items") == 3
    add(source, (4, "late", DAY))  # below the watermark
    with source.begin() as conn:  # deleted, and changed without moving its watermark
        conn.execute(sa.delete(ITEMS).where(ITEMS.c.id == 1))
        conn.execute(sa.update(ITEMS).where(ITEMS.c.id == 2).values(name="renamed"))
    assert reconciled("items")[1].status == "PASS"  # 3 rows and 3 in the source: only a full load sees these
    project(INCREMENTAL.replace("mode = incremental", "mode = full"))  # the catch-up run
    assert load("items") == 3
    assert [r[:2] for r in table_rows(warehouse, "items")] == [(2, "renamed"), (3, "item 3"), (4, "late")]
    assert "2024-01-04" in read_state(warehouse, "items")["watermark"]  # the highest, as an incremental load keeps it
    project(INCREMENTAL)  # back to incremental: it goes on from there
    add(source, (5, "new", DAY + dt.timedelta(days=9)))
    run = resolve_run("items")
    staged = extract_table.fn(run)
    assert staged.rows == 1
    check_staged_table.fn(run, staged)
    assert load_table_atomically.fn(run, staged) == 4


def test_a_table_changed_by_hand_is_seen_by_the_load_after_the_next(ends, project):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    ITEMS.create(source)
    add(source, *[(i, f"item {i}", DAY + dt.timedelta(days=i)) for i in range(1, 4)])
    project(INCREMENTAL)
    assert load("items") == 3
    with warehouse.begin() as conn:  # a row deleted in the warehouse, outside the kit
        conn.execute(sa.text("DELETE FROM items WHERE id = 1"))
    rows, result = reconciled("items")  # compared with the count the last load recorded: not seen yet
    assert (rows, result.status) == (2, "PASS")
    rows, result = reconciled("items")  # that publish counted the table: now it is
    assert (rows, result.status) == (2, "WARN") and result.detail.startswith("2 rows, the source has 3: 1 missing")
