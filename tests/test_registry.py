"""The registry grown up: several sources into one warehouse, checks before anything is written, keys in the
warehouse, every PostgreSQL type landing, passwords with any character, failures in one line."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import shutil
import urllib.parse

import pytest
import sqlalchemy as sa
from conftest import PG_PASSWORD, assert_same_tables, table_rows

from my_package.common.db import make_engine
from my_package.dev.demo import build_demo_source, example_settings

CANONICAL_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


def admin_engine(postgres) -> sa.Engine:
    "The throwaway cluster's postgres database, autocommit."
    return sa.create_engine(
        f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:{postgres['port']}/postgres",
        isolation_level="AUTOCOMMIT",
    )


# ---- several sources, one warehouse --------------------------------------------------------------------------


def three_sources(tmp_path, demo_source, pg_url: str) -> dict[str, str]:
    "Two SQLite source files and one PostgreSQL source, holding demo tables and a table with 'T' timestamps."
    main, crm = tmp_path / "main.db", tmp_path / "crm.db"
    shutil.copy(demo_source, main)
    build_demo_source(f"sqlite:///{crm}", tables=("weather",), force=True)
    with make_engine(f"sqlite:///{crm}").begin() as conn:  # text timestamps as another tool might write them
        conn.exec_driver_sql("CREATE TABLE visits (id INTEGER PRIMARY KEY, at TIMESTAMP NOT NULL)")
        conn.exec_driver_sql("INSERT INTO visits VALUES (1, '2024-03-01T12:00:00'), (2, '2024-03-01T13:30:00+02:00')")
    build_demo_source(pg_url, tables=("airports",))
    return {"source": f"sqlite:///{main}", "crm": f"sqlite:///{crm}", "pg": pg_url}


def two_source_settings(sources: dict[str, str], warehouse: str) -> str:
    "A settings.ini whose tables come from three connections of one profile."
    text = example_settings(("airlines", "planes"), sources["source"], warehouse)
    text = text.replace(
        f"warehouse = {warehouse}\n", f"warehouse = {warehouse}\ncrm = {sources['crm']}\npg = {sources['pg']}\n"
    )
    return text + (
        "\n[table:weather]\nsource = crm\nsource_table = weather\nprimary_key = origin, time_hour\n"
        "\n[table:visits]\nsource = crm\nsource_table = visits\nprimary_key = id\n"
        "\n[table:airports]\nsource = pg\nquery = SELECT faa, name, lat, lon FROM airports WHERE name LIKE '%Intl%'\n"
        "primary_key = faa\n"
    )


@pytest.mark.parametrize("warehouse_kind", ["sqlite", "postgresql"])
def test_two_sqlite_sources_and_a_postgresql_source_feed_one_warehouse(
    warehouse_kind, cli, tmp_path, demo_source, pg_databases
):
    sources = three_sources(tmp_path, demo_source, pg_databases["source"])
    warehouse_url = pg_databases["warehouse"] if warehouse_kind == "postgresql" else f"sqlite:///{tmp_path / 'wh.db'}"
    settings = tmp_path / "settings.ini"
    settings.write_text(two_source_settings(sources, warehouse_url))
    assert cli("deployments", "--write", settings=settings).returncode == 0

    out = cli("run", "--all", "--no-reports", "--no-transform", settings=settings)
    assert out.returncode == 0, out.stdout + out.stderr
    warehouse = make_engine(warehouse_url)
    assert_same_tables(make_engine(sources["source"]), warehouse, ("airlines", "planes"))
    assert_same_tables(make_engine(sources["crm"]), warehouse, ("weather",))
    src_airports = sa.text("SELECT faa, name, lat, lon FROM airports WHERE name LIKE '%Intl%'")
    with make_engine(sources["pg"]).connect() as conn:
        expected = sorted(tuple(r) for r in conn.execute(src_airports))
    assert table_rows(warehouse, "airports") == expected
    listed = cli("tables", settings=settings)
    assert "visits (crm)" in listed.stdout and "(pg)" in listed.stdout

    checked = cli("check", settings=settings)
    assert checked.returncode == 0, checked.stderr
    assert "look right (5 tables)" in " ".join(checked.stderr.split())
    if warehouse_kind == "sqlite":  # one text format for timestamps, whichever path wrote them
        with warehouse.connect() as conn:
            stamps = [v for row in conn.exec_driver_sql("SELECT at FROM visits") for v in row]
            stamps += [v for row in conn.exec_driver_sql("SELECT time_hour FROM weather LIMIT 50") for v in row]
        assert stamps and all(CANONICAL_TIMESTAMP.match(s) for s in stamps), stamps[:5]
        assert stamps[:2] == ["2024-03-01 12:00:00.000000", "2024-03-01 11:30:00.000000"]  # +02:00 lands as UTC


# ---- refusals that change nothing --------------------------------------------------------------------------


def one_error_line(out) -> str:
    "The single error line of a refused command (and no traceback)."
    assert "Traceback" not in out.stdout + out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_new_table_refuses_bad_definitions_in_one_line_and_writes_nothing(cli, tmp_path, demo_source):
    settings_text = example_settings(("airlines",), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    settings = tmp_path / "settings.ini"
    settings.write_text(settings_text)
    before = settings.read_bytes()
    cases = {
        "missing key column": (["--source", "planes", "--key", "tail_number"], "primary_key: 'tail_number' not among"),
        "bad SELECT": (["--source", "SELECT tailnum FROM planes WHERE", "--key", "tailnum"], "does not compile"),
        "missing watermark": (["--source", "planes", "--key", "tailnum", "--incremental", "changed_at"], "watermark:"),
    }
    for what, (args, expected) in cases.items():
        out = cli("new-table", "boats", *args, settings=settings)
        assert out.returncode != 0, what
        line = one_error_line(out)
        assert expected in line and "settings.ini is unchanged" in line, (what, line)
        assert settings.read_bytes() == before, f"{what}: settings.ini changed"
    assert not (tmp_path / "prefect.yaml").exists()


def test_check_lists_every_mistake_in_settings_at_once(cli, tmp_path, demo_source):
    settings = tmp_path / "settings.ini"
    settings.write_text(
        example_settings(("airlines", "planes"), f"sqlite:///{demo_source}", "sqlite:///wh.db")
        .replace("primary_key = carrier\n", "")  # 1: a table without its key
        .replace("[table:planes]\n", "[table:planes]\nschedule = 99 * * * *\n")  # 2: a cron Prefect refuses
        + "\n[transform:fleet]\ninputs = planes, boats\nsql = SELECT * FROM planes\nprimary_key = tailnum\n"  # 3
    )
    out = cli("check", settings=settings)
    assert out.returncode == 1
    text = " ".join(out.stderr.split())
    assert "[table:airlines] primary_key: missing" in text
    assert "[table:planes] schedule: '99 * * * *' is not a 5-field cron expression" in text
    assert "[transform:fleet] inputs: 'boats' is neither a table nor a transform" in text
    assert "3 problem(s) found" in text


# ---- keys, NOT NULLs and every type in the warehouse -----------------------------------------------------------

PG_TYPES = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE everything (
    id integer PRIMARY KEY, ints integer[], words text[], doc json, docb jsonb, feeling mood, amount positive,
    ident uuid, span interval, host inet, net cidr, mac macaddr, price money, flags bit(4), range int4range,
    page xml, words_tsv tsvector, spot point, exact numeric(12,4), loose numeric, at timestamptz, clock time,
    day date, yes boolean, raw bytea, label varchar(20) NOT NULL
);
INSERT INTO everything VALUES
    (1, '{1,2,3}', '{"a b","c"}', '{"k": [1, 2]}', '{"k": {"n": null}}', 'happy', 7,
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 year 2 mons 3 days 04:05:06.5', '192.168.0.1', '10.0.0.0/8',
     '08:00:2b:01:02:03', 12.34, B'1010', '[1,10)', '<a>1</a>', 'the quick fox', '(1.5,2)', 1234.5678,
     123456789012345678901234567890.123, '2024-03-01 12:00:00+02', '13:14:15', '2024-03-01', true, '\\xdeadbeef',
     'first'),
    (2, '{}', NULL, 'null', '[]', 'sad', 1, NULL, '-1 days', '::1', NULL, NULL, -1, B'0000', 'empty', NULL, NULL,
     NULL, -0.0001, NULL, NULL, NULL, NULL, false, NULL, 'second');
"""
TEXT_FORM = {"ints", "words", "doc", "docb"}  # the columns PostgreSQL writes as JSON


def pg_text_forms(engine: sa.Engine, table: str, columns: list[str]) -> list[tuple]:
    "Each row of `table` as PostgreSQL writes its columns as text (JSON for arrays and json), ordered by id."
    exprs = ", ".join(f"to_json({c})::text" if c in TEXT_FORM else f"{c}::text" for c in columns)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT {exprs} FROM {table} ORDER BY id")]


def test_every_postgresql_type_lands_in_sqlite_postgresql_and_duckdb(tmp_path, pg_databases, monkeypatch):
    from conftest import load

    source = make_engine(pg_databases["source"])
    with source.begin() as conn:
        conn.exec_driver_sql(PG_TYPES)
    columns = [c["name"] for c in sa.inspect(source).get_columns("everything")]
    expected = pg_text_forms(source, "everything", columns)
    sections = (
        "[table:everything]\nsource_table = everything\nprimary_key = id\n"
        "[table:everything_q]\nquery = SELECT * FROM everything\nprimary_key = id\n"
    )
    for kind, warehouse_url in (
        ("postgresql", pg_databases["warehouse"]),
        ("sqlite", f"sqlite:///{tmp_path / 'w.db'}"),
        ("duckdb", f"duckdb:///{tmp_path / 'w.duckdb'}"),
    ):
        settings = tmp_path / f"{kind}.ini"
        settings.write_text(
            f"[pipeline]\nchunk_size = 1\n[profile:default]\nsource = {source.url.render_as_string(False)}\nwarehouse = {warehouse_url}\n{sections}"
        )
        monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
        assert load("everything") == 2 and load("everything_q") == 2
        warehouse = make_engine(warehouse_url)
        types = {
            t: {c["name"]: c["type"].compile(dialect=warehouse.dialect) for c in sa.inspect(warehouse).get_columns(t)}
            for t in ("everything", "everything_q")
        }
        assert types["everything"] == types["everything_q"], "a query's columns land as the table's do"
        label = next(c for c in sa.inspect(warehouse).get_columns("everything") if c["name"] == "label")
        assert label["nullable"] is False, "the source's NOT NULL is kept"
        if kind == "postgresql":  # every value as PostgreSQL writes it, types kept (an enum or domain as text)
            assert pg_text_forms(warehouse, "everything", columns) == expected
            assert types["everything"]["ints"] == "INTEGER[]" and types["everything"]["docb"] == "JSONB"
            assert types["everything"]["exact"] == "NUMERIC(12, 4)"
            continue
        natives = {"id", "exact", "at", "clock", "day", "yes", "raw", "loose", "label"}
        with warehouse.connect() as conn:
            got = [tuple(r) for r in conn.exec_driver_sql('SELECT * FROM "everything" ORDER BY id')]
        if kind == "duckdb":  # DuckDB's own types for numbers, times and bytes; the rest as PostgreSQL writes it
            natives -= {"loose"}
            assert [types["everything"][c] for c in ("exact", "at", "clock", "day", "yes", "raw")] == [
                "NUMERIC(12, 4)",
                "TIMESTAMP WITH TIME ZONE",
                "TIME WITHOUT TIME ZONE",
                "DATE",
                "BOOLEAN",
                "BYTEA",
            ]
            first = dict(zip(columns, got[0], strict=True))
            assert first["at"] == dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC) and first["clock"] == dt.time(13, 14, 15)
            assert first["exact"] == decimal.Decimal("1234.5678") and first["raw"] == b"\xde\xad\xbe\xef"
            assert (first["id"], first["day"], first["yes"]) == (1, dt.date(2024, 3, 1), True)
        for want, have in zip(expected, got, strict=True):
            for name, w, h in zip(columns, want, have, strict=True):
                if name in TEXT_FORM:
                    assert (json.loads(h) if h is not None else None) == (json.loads(w) if w is not None else None), (
                        name
                    )
                elif name not in natives:
                    assert h == w, (name, h, w)
        if kind == "duckdb":
            continue
        assert got[0][columns.index("at")] == "2024-03-01 10:00:00.000000"  # UTC, the one text format
        assert str(got[0][columns.index("loose")]) == "123456789012345678901234567890.123"  # unbounded: exact text
        assert float(got[0][columns.index("exact")]) == 1234.5678
        assert types["everything"]["exact"] == "NUMERIC(12, 4)"


def declared_key(engine: sa.Engine, table: str) -> list[str]:
    "The columns of `table`'s primary key, or of its unique index (SQLite), as the database describes them."
    inspector = sa.inspect(engine)
    key = inspector.get_pk_constraint(table).get("constrained_columns")
    if key:
        return key
    return next((i["column_names"] for i in inspector.get_indexes(table) if i["unique"]), [])


def test_published_tables_carry_their_key_after_full_and_incremental_loads(ends, project):
    from conftest import load
    from test_loads import INCREMENTAL, ITEMS, fill_items

    source, warehouse = make_engine(ends["source"]), make_engine(ends["warehouse"])
    ITEMS.create(source)
    fill_items(source, range(1, 6))
    project(INCREMENTAL + "[table:items_full]\nsource_table = items\nprimary_key = id\n")
    for table in ("items", "items_full"):
        assert load(table) == 5
        assert declared_key(warehouse, table) == ["id"]
    id_column = next(c for c in sa.inspect(warehouse).get_columns("items") if c["name"] == "id")
    assert id_column["nullable"] is False
    import datetime as dt

    fill_items(source, range(6, 9), when=dt.datetime(2024, 2, 1))
    assert load("items") == 8 and load("items_full") == 8  # an incremental upsert on the key, and a full reload
    for table in ("items", "items_full"):
        assert declared_key(warehouse, table) == ["id"]
    assert not [t for t in sa.inspect(warehouse).get_table_names() if t.startswith("_staging_")]


# ---- passwords and failures ------------------------------------------------------------------------------------

ODD_PASSWORD = "p@ss:w/rd#1 %"


def test_a_password_with_reserved_characters_works_and_never_shows(
    cli, tmp_path, demo_source, postgres, prefect_server
):
    admin = admin_engine(postgres)
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE IF EXISTS kit_odd WITH (FORCE)")
        conn.exec_driver_sql("DROP ROLE IF EXISTS kit_odd")
        conn.exec_driver_sql(f"CREATE ROLE kit_odd LOGIN PASSWORD '{ODD_PASSWORD.replace('%', '%%')}'")
        conn.exec_driver_sql("CREATE DATABASE kit_odd OWNER kit_odd")
    home = tmp_path / "prefect-home"
    settings = tmp_path / "settings.ini"
    settings.write_text(
        example_settings(("airlines", "planes"), f"sqlite:///{demo_source}", "sqlite:///unused.db").replace(
            "warehouse = sqlite:///unused.db",
            f"warehouse = postgresql+psycopg://kit_odd:${{KIT_ODD_PW}}@127.0.0.1:{postgres['port']}/kit_odd",
        )
        + "[table:bad_query]\nquery = SELECT nosuchcolumn FROM airlines\nprimary_key = carrier\n"
    )
    env = {"KIT_ODD_PW": ODD_PASSWORD, "PREFECT_HOME": str(home)}
    out = cli("run", "--all", settings=settings, env=env)  # two tables load, one fails, reports render
    assert out.returncode == 1 and "no such column: nosuchcolumn" in out.stderr
    warehouse = make_engine(f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:{postgres['port']}/kit_odd")
    assert table_rows(warehouse, "airlines") == table_rows(make_engine(f"sqlite:///{demo_source}"), "airlines")
    checked = cli("check", settings=settings, env=env)
    spellings = {ODD_PASSWORD, urllib.parse.quote(ODD_PASSWORD, safe=""), urllib.parse.quote_plus(ODD_PASSWORD)}
    for text in (out.stdout, out.stderr, checked.stdout, checked.stderr):
        assert not any(s in text for s in spellings)
    places = (home, prefect_server["home"], tmp_path / "reports")  # the Prefect server keeps the runs' records
    files = [p for place in places for p in place.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files) and any(p.name.endswith(".db") for p in files)
    for path in files:
        data = path.read_bytes()
        assert not any(s.encode() in data for s in spellings), f"the password is in {path}"
    with admin.connect() as conn:
        conn.exec_driver_sql("DROP DATABASE kit_odd WITH (FORCE)")
        conn.exec_driver_sql("DROP ROLE kit_odd")


def test_a_failing_table_is_one_line_in_the_output(cli, tmp_path, demo_source):
    settings = tmp_path / "settings.ini"
    settings.write_text(
        example_settings(("airlines", "planes"), f"sqlite:///{demo_source}", "sqlite:///wh.db")
        + "\n[table:bad_query]\nquery = SELECT carrier, nosuchcolumn FROM airlines\nprimary_key = carrier\n"
    )
    out = cli("run", "--all", "--no-reports", "--no-transform", settings=settings)
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert "Traceback" not in text and "[SQL:" not in text
    mentions = [line for line in text.splitlines() if "bad_query" in line]
    progress = [line for line in mentions if line.strip().startswith("bad_query: failed in extract_table")]
    summary = [line for line in mentions if "FAILED in extract_table" in line]
    assert len(progress) == 1 and len(summary) == 1, mentions
    assert "no such column: nosuchcolumn" in progress[0]
    assert not sa.inspect(make_engine(f"sqlite:///{tmp_path / 'wh.db'}")).has_table("_staging_bad_query")
