"""What changed since the previous run: computed by the warehouse at publish time, kept beside the run log, shown in
the run summary, the report, the index and `tables`; on SQLite, PostgreSQL and DuckDB warehouses."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from my_package.common.bookkeeping import last_runs, latest_changes
from my_package.common.db import make_engine
from my_package.common.runs import resolve_run
from my_package.registry.settings import load_settings
from my_package.reporting.render import render_report


def write_events(source: sa.Engine) -> None:
    "200 events, keyed by id."
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE events (id INTEGER PRIMARY KEY, amount REAL, label TEXT)")
        conn.exec_driver_sql(
            "INSERT INTO events SELECT value, value * 1.5, 'e' || value FROM generate_series(1, 200)"
            if source.dialect.name == "postgresql"
            else "WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 200) "
            "INSERT INTO events SELECT v, v * 1.5, 'e' || v FROM n"
        )


def events_project(tmp_path, warehouse_kind: str, pg_databases: dict, pipeline: str = "") -> tuple:
    "200 events and a project loading them into a `warehouse_kind` warehouse: (source, warehouse URL, settings.ini)."
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    warehouse = {
        "sqlite": f"sqlite:///{tmp_path / 'warehouse.db'}",
        "postgresql": pg_databases["warehouse"],
        "duckdb": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
    }[warehouse_kind]
    source = make_engine(source_url)
    write_events(source)
    settings = tmp_path / "settings.ini"
    settings.write_text(
        f"{pipeline}[profile:default]\nsource = {source_url}\nwarehouse = {warehouse}\n"
        "[table:events]\nsource_table = events\nprimary_key = id\n"
    )
    return source, warehouse, settings


@pytest.mark.parametrize("warehouse_kind", ["sqlite", "postgresql", "duckdb"])
def test_a_full_refresh_reports_rows_added_removed_and_values_changed(
    warehouse_kind, cli, tmp_path, pg_databases, monkeypatch
):
    source, warehouse, settings = events_project(
        tmp_path, warehouse_kind, pg_databases, "[pipeline]\nchanges = values\n"
    )
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))

    first = cli("run", "events", "--no-reports", settings=settings)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "ok; first load" in first.stdout, first.stdout

    with source.begin() as conn:  # 57 amounts changed, 3 rows deleted, 10 added
        conn.exec_driver_sql("UPDATE events SET amount = amount + 1 WHERE id <= 57")
        conn.exec_driver_sql("DELETE FROM events WHERE id > 197")
        conn.exec_driver_sql("INSERT INTO events SELECT id + 1000, amount, label FROM events WHERE id <= 10")
    second = cli("run", "events", settings=settings)  # with its report and the index
    assert second.returncode == 0, second.stderr + second.stdout
    said = "+10 -3 ~57: amount 57"
    assert f"ok; {said}" in second.stdout, second.stdout

    wh = make_engine(warehouse)
    kept = latest_changes(wh, "events")[0]
    assert (kept["mode"], kept["added"], kept["removed"], kept["changed"]) == ("full", 10, 3, 57), kept
    assert kept["columns"] == {"amount": 57} and kept["words"] == said, kept
    example = kept["examples"][0]
    assert example["column"] == "amount" and float(example["new"]) == float(example["old"]) + 1, example
    assert last_runs(wh)["events"]["changes"] == said

    page = resolve_run("events", settings=load_settings(settings)).project / "reports" / "default"
    assert said in (page / "index.html").read_text()
    report = page / "events.html"
    if not report.exists():  # the run renders it in the background: render it here, then read it
        report = render_report(resolve_run("events", settings=load_settings(settings))).html
    assert said in report.read_text(), "the report's 'What changed' section does not say it"

    tables = cli("tables", settings=settings)
    assert "+10 -3 ~57" in tables.stdout, tables.stdout

    again = cli("run", "events", "--no-reports", settings=settings)
    assert again.returncode == 0 and "ok; +0 -0 ~0" in again.stdout, again.stdout
    assert latest_changes(wh, "events")[0]["words"] == "+0 -0 ~0"

    # [pipeline] changes = counts: rows added, removed and changed by key, no column named; off: nothing compared
    with source.begin() as conn:
        conn.exec_driver_sql("DELETE FROM events WHERE id = 1")
        conn.exec_driver_sql("UPDATE events SET label = 'x' WHERE id IN (2, 3)")
    for setting, words in (("counts", r"ok; \+0 -1 ~2; checks"), ("off", r"│ ok; checks: \d+ ok +│")):
        settings.write_text(settings.read_text().replace("changes = values\n", f"changes = {setting}\n", 1))
        told = cli("run", "events", "--no-reports", settings=settings)
        assert told.returncode == 0 and re.search(words, told.stdout), told.stdout
        settings.write_text(settings.read_text().replace(f"changes = {setting}\n", "changes = values\n"))
    assert len(latest_changes(wh, "events")) == 4, "changes = off recorded a comparison"
    assert last_runs(wh)["events"]["changes"] is None


@pytest.mark.parametrize(
    "warehouse_kind, said",
    [
        ("sqlite", "+2 -1 ~?"),
        ("postgresql", "+2 -1 ~?"),
        ("duckdb", "+2 -1 ~5: amount 5"),
    ],
)
def test_by_default_each_warehouse_compares_what_costs_at_most_a_third_of_a_load(
    warehouse_kind, said, cli, tmp_path, pg_databases, monkeypatch
):
    # the README: values on DuckDB; rows added and removed on SQLite and PostgreSQL (bench/bench_changes.py)
    source, warehouse, settings = events_project(tmp_path, warehouse_kind, pg_databases)
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    first = cli("run", "events", "--no-reports", settings=settings)
    assert first.returncode == 0 and "ok; first load" in first.stdout, first.stderr + first.stdout

    with source.begin() as conn:  # 5 amounts changed, 1 row deleted, 2 added
        conn.exec_driver_sql("UPDATE events SET amount = amount + 1 WHERE id <= 5")
        conn.exec_driver_sql("DELETE FROM events WHERE id = 200")
        conn.exec_driver_sql("INSERT INTO events SELECT id + 1000, amount, label FROM events WHERE id <= 2")
    second = cli("run", "events", "--no-reports", settings=settings)
    assert second.returncode == 0 and f"ok; {said}" in second.stdout, second.stdout
    kept = latest_changes(make_engine(warehouse), "events")[0]
    assert kept["words"] == said and (kept["added"], kept["removed"]) == (2, 1), kept
