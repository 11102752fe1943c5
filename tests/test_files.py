"""Files as sources: CSV, gzipped CSV, Parquet and JSON Lines from a folder or S3, into every warehouse."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from conftest import table_rows

from my_package.commands.register import NewTable, register_table
from my_package.common.bookkeeping import read_state
from my_package.common.db import make_engine
from my_package.common.integrity import column_kinds
from my_package.common.runs import resolve_run
from my_package.errors import PipelineError
from my_package.flows.factory import dropped_on_failure
from my_package.registry.settings import load_settings
from my_package.tasks.extract import extract_table
from my_package.tasks.load import load_table_atomically
from my_package.tasks.verify import check_staged_table

ROWS = 3000  # with chunk_size 500: several batches per file
TEXTS = ["plain", "with, a comma", 'with "quotes"', "naïve café ✓ 日本語 🚀", "", "'; DROP TABLE x; --"]
DECLARED = "amount decimal(12,2), seen timestamp, day date, flag boolean"


def rows(start: int = 1, count: int = ROWS) -> list[dict]:
    "Awkward rows: text with commas, quotes and any script, NULLs, decimals, floats, timestamps, dates, booleans."
    return [
        {
            "id": i,
            "name": None if i % 7 == 0 else TEXTS[i % len(TEXTS)],
            "amount": decimal.Decimal(f"{i * 37 % 100000}.{i % 100:02d}"),
            "ratio": None if i % 5 == 0 else i / 7,
            "seen": dt.datetime(2024, 1, 1, 0, 0, 0, (i * 1013) % 1_000_000) + dt.timedelta(minutes=i),
            "day": dt.date(2024, 1, 1) + dt.timedelta(days=i % 400),
            "flag": i % 3 == 0,
        }
        for i in range(start, start + count)
    ]


def arrow(records: list[dict]) -> pa.Table:
    "The rows as an Arrow table with the types they are (the independent side of every comparison)."
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("name", pa.string()),
            ("amount", pa.decimal128(12, 2)),
            ("ratio", pa.float64()),
            ("seen", pa.timestamp("us")),
            ("day", pa.date32()),
            ("flag", pa.bool_()),
        ]
    )
    return pa.Table.from_pylist(records, schema=schema)


def write_csv(path: Path, records: list[dict], compress: bool = False) -> None:
    "The rows as CSV (pyarrow's writer: quotes where needed; a NULL is an empty field)."
    path.parent.mkdir(parents=True, exist_ok=True)
    table = arrow(records)
    if compress:
        with gzip.open(path, "wb") as out:
            pcsv.write_csv(table, out)
    else:
        pcsv.write_csv(table, path)


def write_jsonl(path: Path, records: list[dict]) -> None:
    "The rows as JSON Lines (decimals, timestamps and dates as text, as APIs write them)."
    path.parent.mkdir(parents=True, exist_ok=True)
    text = lambda v: str(v) if isinstance(v, (decimal.Decimal, dt.date)) else v  # noqa: E731
    path.write_text("".join(json.dumps({k: text(v) for k, v in r.items()}) + "\n" for r in records))


def canonical(record: dict | tuple, names: list[str]) -> tuple:
    "A row as comparable values, whatever the warehouse returned (SQLite: decimals as floats, booleans as 0/1)."
    values = dict(zip(names, record, strict=True)) if isinstance(record, tuple) else record
    out = []
    for name in names:
        v = values[name]
        if v is None:
            out.append(None)
        elif name == "amount":
            out.append(round(float(v), 2))
        elif name == "ratio":
            out.append(round(float(v), 9))
        elif name == "flag":
            out.append(bool(v))
        elif name == "seen":
            out.append((v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v))).isoformat())
        elif name == "day":
            out.append(str(v)[:10])
        else:
            out.append(v)
    return tuple(out)


def warehouse_rows(warehouse: str, table: str, names: list[str]) -> list[tuple]:
    "The warehouse table's rows (only `names`), canonical and sorted by id."
    engine = make_engine(warehouse)
    t = sa.Table(table, sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        found = [canonical(tuple(r), names) for r in conn.execute(sa.select(*[t.c[n] for n in names]))]
    return sorted(found)


def expected_rows(records: list[dict], names: list[str]) -> list[tuple]:
    "The rows the files were written from, canonical and sorted by id."
    return sorted(canonical(r, names) for r in records)


@pytest.fixture(params=["sqlite", "postgresql", "duckdb"])
def warehouse(request, tmp_path) -> str:
    "A SQLite, a (fresh) PostgreSQL or a DuckDB warehouse's URL."
    if request.param == "postgresql":
        return request.getfixturevalue("pg_databases")["warehouse"]
    return {"sqlite": f"sqlite:///{tmp_path / 'warehouse.db'}", "duckdb": f"duckdb:///{tmp_path / 'wh.duckdb'}"}[
        request.param
    ]


@pytest.fixture
def files_project(tmp_path, monkeypatch):
    "Write settings.ini: the folder `exports/` (beside it) as the source named `exports`, and the given sections."

    def write(warehouse: str, sections: str, exports: str = "exports", chunk_size: int = 500) -> Path:
        settings = tmp_path / "settings.ini"
        settings.write_text(
            f"[pipeline]\nchunk_size = {chunk_size}\n[profile:default]\nsource = sqlite:///{tmp_path / 'unused.db'}\n"
            f"exports = {exports}\nwarehouse = {warehouse}\n{sections}"
        )
        monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
        return settings

    return write


def run(name: str):
    "extract -> check -> load, as the table's flow runs them (a step that fails drops the staging table)."
    table_run = resolve_run(name)
    with dropped_on_failure(table_run):
        staged = extract_table.fn(table_run)
        check_staged_table.fn(table_run, staged)
        load_table_atomically.fn(table_run, staged)
    return staged


def section(name: str, path: str, extra: str = "") -> str:
    "A table read from the folder source `exports`, keyed on id."
    return f"[table:{name}]\nsource = exports\npath = {path}\nprimary_key = id\n{extra}\n"


NAMES = ["id", "name", "amount", "ratio", "seen", "day", "flag"]


def test_csv_gzipped_csv_parquet_and_json_lines_load_exactly(warehouse, files_project, tmp_path, caplog):
    exports, records = tmp_path / "exports", rows()
    write_csv(exports / "plain" / "trips.csv", records)
    write_csv(exports / "gz" / "trips.csv.gz", records, compress=True)
    for part in range(3):  # several Parquet files behind one glob, in their native types
        pq.write_table(arrow(records[part::3]), exports / f"part-{part}.parquet")
    write_jsonl(exports / "api" / "dump-1.jsonl", records[:1000])
    write_jsonl(exports / "api" / "dump-2.ndjson", records[1000:])
    files_project(
        warehouse,
        section("from_csv", "plain/trips.csv", f"columns = {DECLARED}")
        + section("from_gz", "gz/*.csv.gz", f"columns = {DECLARED}")
        + section("from_parquet", "part-*.parquet")
        + section("from_jsonl", "api/", f"columns = {DECLARED}")
        + section("from_csv_inferred", "plain/trips.csv"),  # the types as pyarrow infers them
    )
    expected = expected_rows(records, NAMES)
    for table in ("from_csv", "from_gz", "from_parquet", "from_jsonl", "from_csv_inferred"):
        staged = run(table)
        assert staged.rows == ROWS, table
        assert warehouse_rows(warehouse, table, NAMES) == expected, f"{table}: values differ from the files"
    # a DuckDB warehouse read the Parquet files itself (DuckDB says when it gives way)
    assert "gave way" not in caplog.text
    # the declared types are the warehouse's column types, as a database source's would be
    columns = {c["name"]: c["type"] for c in sa.inspect(make_engine(warehouse)).get_columns("from_csv")}
    assert isinstance(columns["amount"], sa.Numeric) and not isinstance(columns["amount"], sa.Float)
    assert isinstance(columns["seen"], sa.DateTime) and isinstance(columns["day"], sa.Date)


def test_a_hive_partitioned_folder_gives_its_partition_columns(warehouse, files_project, tmp_path):
    records = rows(count=600)
    table = arrow(records).append_column("month", pa.array([1 + r["id"] % 3 for r in records], pa.int32()))
    table = table.append_column("year", pa.array([2024] * len(records), pa.int32()))
    pq.write_to_dataset(table, tmp_path / "exports" / "lake", partition_cols=["year", "month"])
    (tmp_path / "exports" / "lake" / "_SUCCESS").write_text("")  # a marker file, as Spark leaves: not data
    files_project(warehouse, section("lake", "lake/"))
    assert run("lake").rows == 600
    found = warehouse_rows(warehouse, "lake", ["id", "year", "month"])
    assert found == sorted((r["id"], 2024, 1 + r["id"] % 3) for r in records)
    assert warehouse_rows(warehouse, "lake", NAMES) == expected_rows(records, NAMES)


def test_incremental_by_file_reads_only_new_and_changed_files(warehouse, files_project, tmp_path):
    exports = tmp_path / "exports" / "daily"
    write_csv(exports / "day-1.csv", rows(1, 100))
    write_csv(exports / "day-2.csv", rows(101, 100))
    files_project(warehouse, section("daily", "daily/*.csv", f"columns = {DECLARED}\nmode = incremental"))
    assert run("daily").rows == 200
    # a new file: only its rows are read
    write_csv(exports / "day-3.csv", rows(201, 50))
    assert run("daily").rows == 50
    assert [r[0] for r in warehouse_rows(warehouse, "daily", ["id"])] == list(range(1, 251))
    # a rewritten file: its rows replace all of its old ones (ids 101-200 become 101-130, with new values)
    changed = [{**r, "name": "rewritten"} for r in rows(101, 30)]
    write_csv(exports / "day-2.csv", changed)
    os.utime(exports / "day-2.csv", ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))
    assert run("daily").rows == 30
    expected = expected_rows(rows(1, 100) + changed + rows(201, 50), NAMES)
    assert warehouse_rows(warehouse, "daily", NAMES) == expected
    sources = {f for (f,) in warehouse_rows(warehouse, "daily", ["_source_file"])}  # each row names its file
    assert sources == {"daily/day-1.csv", "daily/day-2.csv", "daily/day-3.csv"}
    # a rerun with nothing changed reads nothing, and the table stays as it is
    assert run("daily").rows == 0
    assert warehouse_rows(warehouse, "daily", NAMES) == expected
    state = json.loads(read_state(make_engine(warehouse), "daily")["watermark"])["files"]
    assert sorted(state) == ["daily/day-1.csv", "daily/day-2.csv", "daily/day-3.csv"]


def test_incremental_on_a_watermark_reads_only_newer_rows(warehouse, files_project, tmp_path):
    exports = tmp_path / "exports" / "events"
    first = rows(1, 300)
    exports.mkdir(parents=True)
    pq.write_table(arrow(first), exports / "part-1.parquet")
    files_project(warehouse, section("events", "events/", "mode = incremental\nwatermark = seen"))
    assert run("events").rows == 300
    # the same file again and a new one: only rows past the stored watermark are staged (the last 100 are new)
    later = [{**r, "seen": r["seen"] + dt.timedelta(days=30)} for r in rows(201, 100)]
    pq.write_table(arrow(later), exports / "part-2.parquet")
    assert run("events").rows == 100
    assert warehouse_rows(warehouse, "events", NAMES) == expected_rows(first[:200] + later, NAMES)
    assert run("events").rows == 0  # nothing past the watermark now


def test_a_header_only_csv_loads_as_an_empty_table_of_the_same_types(warehouse, files_project, tmp_path):
    exports = tmp_path / "exports"
    (exports / "daily").mkdir(parents=True)
    (exports / "orders.csv").write_text("id,name,amount\n1,a,1.5\n2,b,\n")
    (exports / "later.csv").write_text("id,name\n")  # a first export that found nothing
    (exports / "daily" / "day-1.csv").write_text("id,name\n")
    files_project(
        warehouse,
        section("orders", "orders.csv")
        + section("later", "later.csv")
        + section("daily", "daily/*.csv", "mode = incremental"),
    )
    engine = make_engine(warehouse)
    assert run("orders").rows == 2
    kinds = column_kinds(engine, "orders")
    assert kinds == {"id": "integer", "name": "text", "amount": "float"}
    (exports / "orders.csv").write_text("id,name,amount\n")  # the next export found nothing: no drift, no rows
    assert run("orders").rows == 0
    assert column_kinds(engine, "orders") == kinds and table_rows(engine, "orders") == []
    (exports / "orders.csv").write_text("id,name,amount\n3,c,\n")  # a column empty in every row keeps its type too
    assert run("orders").rows == 1
    assert column_kinds(engine, "orders") == kinds and table_rows(engine, "orders") == [(3, "c", None)]
    # no live table to take types from: text for now, and the first rows that come type it (nothing is lost)
    assert run("later").rows == 0
    (exports / "later.csv").write_text("id,name\n7,g\n")
    assert run("later").rows == 1
    assert column_kinds(engine, "later") == {"id": "integer", "name": "text"}
    assert run("daily").rows == 0  # incremental by file: the same
    (exports / "daily" / "day-2.csv").write_text("id,name\n8,h\n9,i\n")
    assert run("daily").rows == 2
    assert column_kinds(engine, "daily") == {"id": "integer", "name": "text", "_source_file": "text"}
    assert [r[:2] for r in table_rows(engine, "daily")] == [(8, "h"), (9, "i")]


def reconcile(name: str):
    "Run `name` as its flow does; return its staged load and its `rows match the source` result."
    table_run = resolve_run(name)
    staged = extract_table.fn(table_run)
    [result] = [r for r in check_staged_table.fn(table_run, staged) if r.check == "rows match the source"]
    load_table_atomically.fn(table_run, staged)
    return staged, result


def test_an_incremental_table_from_files_is_reconciled_with_its_files(warehouse, files_project, tmp_path):
    daily, events = tmp_path / "exports" / "daily", tmp_path / "exports" / "events"
    daily.mkdir(parents=True)
    (daily / "day-1.csv").write_text("id,v\n1,a\n2,b\n3,c\n")
    (daily / "day-2.csv").write_text("id,v\n4,d\n5,e\n")
    files_project(
        warehouse,
        section("daily", "daily/*.csv", "mode = incremental")
        + section("events", "events/", "mode = incremental\nwatermark = seen"),
    )
    staged, result = reconcile("daily")
    assert (staged.rows, result.status, result.detail) == (5, "PASS", "2 files, 5 rows, as in the table")
    (daily / "day-3.csv").write_text("id,v\n5,e again\n6,f\n")  # id 5 again: the file read last keeps it
    staged, result = reconcile("daily")
    assert (staged.rows, result.status, result.failing, result.samples) == (2, "WARN", 1, ("daily/day-2.csv",))
    assert result.detail.startswith("daily/day-2.csv: 2 in the file, 1 in the table (a key that two files hold")
    (daily / "day-2.csv").write_text("id,v\n4,d\n")  # the export is fixed: the rewritten file replaces its rows
    os.utime(daily / "day-2.csv", ns=(2_000_000_000_000_000_000, 2_000_000_000_000_000_000))
    staged, result = reconcile("daily")
    assert (staged.rows, result.status, result.detail) == (1, "PASS", "3 files, 6 rows, as in the table")
    engine = make_engine(warehouse)
    with engine.begin() as conn:  # a state an older release wrote: each file's size and time, no count
        state = json.loads(read_state(engine, "daily")["watermark"])
        older = json.dumps({"files": {f: v[:2] for f, v in state["files"].items()}}, sort_keys=True)
        conn.execute(sa.text("UPDATE _pipeline_state SET watermark = :w WHERE table_name = 'daily'"), {"w": older})
    staged, result = reconcile("daily")  # its files are counted once (not staged again), and compared
    assert (staged.rows, result.status, result.detail) == (0, "PASS", "3 files, 6 rows, as in the table")
    assert [v[2] for v in json.loads(read_state(engine, "daily")["watermark"])["files"].values()] == [3, 1, 2]
    # files with a watermark are read whole by every load: a late row below the watermark is counted, and said
    events.mkdir()
    pq.write_table(arrow(rows(1, 10)), events / "part-1.parquet")
    assert reconcile("events")[1].status == "PASS"
    late = [{**r, "seen": dt.datetime(2023, 1, 1)} for r in rows(11, 2)]
    pq.write_table(arrow(rows(21, 3) + late), events / "part-2.parquet")
    staged, result = reconcile("events")
    assert (staged.rows, result.status) == (3, "WARN")
    assert result.detail.startswith("13 rows, the source has 15: 2 missing"), result.detail


def bad_case(tmp_path: Path, name: str) -> tuple[str, str]:
    "Spoil the folder `bad/` (which holds a good a.csv) as `name` says; return the table and the expected message."
    bad = tmp_path / "exports" / "bad"
    if name == "malformed line":
        (bad / "b.csv").write_text("id,x\n3,4\n5,6,7\n")
        return "bad", "[table:bad] bad/b.csv line 3: 3 fields where the header has 2 ('5,6,7'). Fix the line"
    if name == "schemas disagree":
        (bad / "b.csv").write_text("id,y\n3,4\n")
        return "bad", "[table:bad] bad/b.csv has the columns id, y where bad/a.csv has id, x: the files of one table"
    if name == "empty folder":
        shutil.rmtree(bad)
        bad.mkdir()
        return "bad", "[table:bad] no file matches 'bad/'"
    if name == "0-byte file":
        (bad / "b.csv").write_bytes(b"")
        return "bad", "[table:bad] bad/b.csv is empty (0 bytes): remove it, or write its rows."
    if name == "not UTF-8":
        (bad / "b.csv").write_bytes("id,x\n3,caf\xe9\n".encode("latin-1"))
        return "bad", "[table:bad] bad/b.csv: not UTF-8 text. Set `encoding = latin-1` (or the file's own)"
    if name == "truncated Parquet":
        data = (tmp_path / "exports" / "pq" / "a.parquet").read_bytes()
        (tmp_path / "exports" / "pq" / "b.parquet").write_bytes(data[: len(data) // 2])
        return "pq", "[table:pq] pq/b.parquet is not a whole Parquet file (truncated, or another format)."
    if name == "a value of another type, late in a file":
        (bad / "b.csv").write_text("id,x\n" + "".join(f"{i},{i}\n" for i in range(3, 200_000)) + "200000,n/a\n")
        return "bad", "[table:bad] bad/b.csv line 199999: column #2 holds 'n/a', which is not int64 as its first rows"
    raise AssertionError(name)


BAD = [
    "malformed line",
    "schemas disagree",
    "empty folder",
    "0-byte file",
    "not UTF-8",
    "truncated Parquet",
    "a value of another type, late in a file",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_files_fail_with_one_clear_line_and_lose_nothing(case, files_project, tmp_path):
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    (tmp_path / "exports" / "bad").mkdir(parents=True)
    (tmp_path / "exports" / "bad" / "a.csv").write_text("id,x\n1,2\n2,3\n")
    (tmp_path / "exports" / "pq").mkdir()
    pq.write_table(pa.table({"id": [1, 2], "x": [2, 3]}), tmp_path / "exports" / "pq" / "a.parquet")
    files_project(warehouse, section("bad", "bad/") + section("pq", "pq/*.parquet"))
    assert run("pq" if case == "truncated Parquet" else "bad").rows == 2  # the good files load first
    table, message = bad_case(tmp_path, case)
    with pytest.raises(PipelineError) as failed:
        run(table)
    assert message in str(failed.value)
    engine = make_engine(warehouse)
    assert table_rows(engine, table) == [(1, 2), (2, 3)]  # the previous table is kept
    assert not [t for t in sa.inspect(engine).get_table_names() if t.startswith("_staging_")]


def test_new_table_checks_the_files_and_writes_nothing_on_failure(files_project, tmp_path):
    (tmp_path / "exports").mkdir()
    pq.write_table(arrow(rows(count=10)), tmp_path / "exports" / "trips-1.parquet")
    settings_path = files_project(f"sqlite:///{tmp_path / 'warehouse.db'}", "")
    before = settings_path.read_text()
    for source, key, expected in [
        ("trips-*.csv", "id", "no file matches 'trips-*.csv'"),
        ("trips-*.parquet", "trip_id", "primary_key: 'trip_id' not among its source's columns"),
    ]:
        with pytest.raises(PipelineError) as refused:
            register_table(load_settings(settings_path), NewTable("trips", source, key, origin="exports"))
        assert expected in str(refused.value)
        assert settings_path.read_text() == before
    register_table(load_settings(settings_path), NewTable("trips", "trips-*.parquet", "id", origin="exports"))
    assert "[table:trips]\nsource = exports\npath = trips-*.parquet\nprimary_key = id\n" in settings_path.read_text()
    assert run("trips").rows == 10


def test_a_table_from_files_runs_with_its_report_from_the_command_line(cli, tmp_path):
    exports = tmp_path / "exports"
    write_csv(exports / "trips" / "2024-01.csv", rows(1, 400))
    write_csv(exports / "trips" / "2024-02.csv", rows(401, 400))
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[profile:default]\nsource = exports\nwarehouse = sqlite:///{tmp_path / 'warehouse.db'}\n")
    added = cli("new-table", "trips", "--source", "trips/*.csv", "--key", "id", "--run", settings=settings)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "path = trips/*.csv" in settings.read_text()
    assert (tmp_path / "reports" / "default" / "trips.html").exists(), added.stdout
    assert "trips/*.csv" in (tmp_path / "reports" / "default" / "trips.html").read_text()
    assert len(table_rows(make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}"), "trips")) == 800
    listed = cli("tables", settings=settings)
    assert "trips/*.csv" in listed.stdout
    checked = cli("check", settings=settings)  # the folder answers, the files match and read
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_rerun_by_file_says_it_read_nothing(cli, tmp_path):
    write_csv(tmp_path / "exports" / "trips" / "2024-01.csv", rows(1, 400))
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[profile:default]\nsource = exports\nwarehouse = sqlite:///{tmp_path / 'warehouse.db'}\n")
    added = cli("new-table", "trips", "--source", "trips/*.csv", "--key", "id", "--by-file", settings=settings)
    assert added.returncode == 0, added.stderr
    first = cli("run", "trips", "--no-reports", settings=settings)
    assert first.returncode == 0 and "  trips: ok (400 rows, " in first.stderr, first.stderr
    again = cli("run", "trips", "--no-reports", settings=settings)  # no new or changed file
    assert again.returncode == 0 and "  trips: ok (0 rows read, 400 in the table, " in again.stderr, again.stderr
    assert "checks: 4 ok" in again.stderr  # the file reconciled with the table among them


@pytest.fixture
def s3(monkeypatch) -> str:
    "A bucket `lake` on an S3-compatible server (moto) on 127.0.0.1; yields the endpoint host:port."
    from moto.server import ThreadedMotoServer

    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "kit-s3-Secret",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(var, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


def test_files_in_object_storage_load_like_local_ones(s3, files_project, tmp_path):
    import boto3

    client = boto3.client("s3", endpoint_url=f"http://{s3}", region_name="us-east-1")
    client.create_bucket(Bucket="lake")
    records = rows(count=1200)
    local = tmp_path / "upload"
    write_csv(local / "trips.csv.gz", records, compress=True)
    for part in range(2):
        pq.write_table(arrow(records[part::2]), local / f"part-{part}.parquet")
    for path in local.iterdir():
        client.upload_file(str(path), "lake", f"exports/year=2024/{path.name}")
    url = f"s3://lake/exports?endpoint_override={s3}&scheme=http&region=us-east-1"
    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    files_project(
        warehouse,
        section("s3_csv", "**/*.csv.gz", f"columns = {DECLARED}") + section("s3_parquet", "year=2024/*.parquet"),
        exports=url,
    )
    for table in ("s3_csv", "s3_parquet"):
        assert run(table).rows == 1200
        assert warehouse_rows(warehouse, table, NAMES) == expected_rows(records, NAMES)
        assert {y for (y,) in warehouse_rows(warehouse, table, ["year"])} == {2024}
    # a bucket that is not there: one line, naming the folder without secrets
    files_project(warehouse, section("s3_csv", "*.csv"), exports=url.replace("lake", "nolake"))
    with pytest.raises(PipelineError) as failed:
        run("s3_csv")
    assert "does not exist or is not a folder" in str(failed.value)
    assert "kit-s3-Secret" not in str(failed.value)
