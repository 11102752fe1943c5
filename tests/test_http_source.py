"""A web API as a source: JSON pages from a local HTTP server on 127.0.0.1, loaded with every guarantee a database table has."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import sqlalchemy as sa
from conftest import table_rows

from my_package.commands.register import NewTable, register_table
from my_package.common.bookkeeping import decode_watermark, read_state
from my_package.common.db import make_engine
from my_package.common.runs import resolve_run
from my_package.errors import PipelineError
from my_package.flows.factory import dropped_on_failure
from my_package.registry.settings import load_settings
from my_package.tasks.extract import extract_table
from my_package.tasks.load import load_table_atomically
from my_package.tasks.verify import check_staged_table

TOKEN = "tok-3f9a-SECRET-77"  # what the API accepts; it must show nowhere


def record(i: int, day: int = 1) -> dict:
    "One flight as an API gives it: a nested crew object, a NULL delay now and then, an ISO timestamp as text."
    return {
        "id": i,
        "carrier": ["UA", "AA", "DL"][i % 3],
        "delay": None if i % 4 == 0 else i * 1.5,
        "crew": {"pilot": f"P{i}", "seats": [1, 2]},
        "updated_at": f"2024-01-{day:02d}T00:00:{i % 60:02d}",
    }


class Api:
    "A JSON API on 127.0.0.1: `records` served by page number, offset or next link under /v1/; `faults` by page."

    def __init__(self):
        self.records = [record(i) for i in range(1, 8)]
        self.faults: dict[int, str] = {}  # page number -> "500", "html", "slow" or "no records"
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):
                self.send_response(404)
                self.end_headers()

            def do_GET(self):
                api.requests.append(self.path)
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self.answer(401, {"error": "unauthorized"})
                since = query.get("updated_since", "")  # a record with no time yet is sent every time
                rows = [r for r in api.records if r["updated_at"] is None or r["updated_at"] > since]
                limit = int(query.get("limit", 3))
                if url.path == "/v1/by_page":
                    number = int(query.get("page", 1))
                    start = (number - 1) * limit
                elif url.path == "/v1/by_offset":
                    start = int(query.get("offset", 0))
                    number = start // limit + 1
                elif url.path == "/v1/by_link":
                    start = int(query.get("after", 0))
                    number = start // limit + 1
                else:
                    return self.answer(404, {"error": "no such endpoint"})
                fault = api.faults.get(number)
                if fault == "500":
                    return self.answer(500, {"error": "boom"})
                if fault == "slow":
                    time.sleep(1.5)
                if fault == "html":
                    return self.answer(200, "<html>Service temporarily unavailable</html>", "text/html")
                body = {"data": {"items": rows[start : start + limit]}}
                if url.path == "/v1/by_link" and start + limit < len(rows):
                    since = f"&updated_since={query['updated_since']}" if "updated_since" in query else ""
                    body["links"] = {"next": f"/v1/by_link?after={start + limit}&limit={limit}{since}"}
                if fault == "no records":
                    body = {"error": "try later"}
                return self.answer(200, body)

            def answer(self, status: int, body, kind: str = "application/json"):
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # a client that timed out left
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def load(name: str) -> int:
    "extract -> check -> load, as the table's flow runs them (a step that fails drops the staging table)."
    run = resolve_run(name)
    with dropped_on_failure(run):
        staged = extract_table.fn(run)
        check_staged_table.fn(run, staged)
        return load_table_atomically.fn(run, staged)


@pytest.fixture
def api():
    server = Api()
    yield server
    server.close()


PAGINATION = {
    "page": "path = by_page\npaginate = page\nlimit = 3",
    "offset": "path = by_offset\npaginate = offset\nlimit = 3",
    "next": "path = by_link\npaginate = next\nnext = links.next",
}


@pytest.fixture
def api_project(api, tmp_path, monkeypatch):
    "Write settings.ini with a source `api` (the local server) and one table section; return its path."
    monkeypatch.setenv("API_TOKEN", TOKEN)

    def write(table: str, chunk_size: int = 2, warehouse: str = f"sqlite:///{tmp_path / 'warehouse.db'}") -> Path:
        path = tmp_path / "settings.ini"
        path.write_text(
            f"[pipeline]\nchunk_size = {chunk_size}\n[profile:default]\napi = {api.url}\nwarehouse = {warehouse}\n{table}"
        )
        monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(path))
        return path

    return write


def flights_section(paginate: str = "page", extra: str = "") -> str:
    return (
        f"[table:flights]\nsource = api\n{PAGINATION[paginate]}\nrecords = data.items\nprimary_key = id\n"
        f"headers = Authorization: Bearer ${{API_TOKEN}}\ntimeout = 0.5\n{extra}"
    )


def warehouse(tmp_path: Path) -> sa.Engine:
    return make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")


def expected(records: list[dict]) -> list[tuple]:
    "The rows the warehouse should hold: nested objects as their JSON text, in the API's column order."
    return sorted(
        (r["id"], r["carrier"], r["delay"], r["crew"] and json.dumps(r["crew"]), r["updated_at"]) for r in records
    )


@pytest.mark.parametrize("paginate", ["page", "offset", "next"])
def test_each_pagination_style_loads_every_record(paginate, api, api_project, tmp_path):
    api.records.append({**record(8), "crew": None})  # a NULL nested object stays NULL
    api_project(flights_section(paginate))
    assert load("flights") == 8  # the row count check compared with the API's own count of records
    engine = warehouse(tmp_path)
    with engine.connect() as conn:  # closed: an open read would lock the next load out of SQLite
        rows = sorted(conn.execute(sa.text("SELECT id, carrier, delay, crew, updated_at FROM flights")))
    assert [tuple(r) for r in rows] == expected(api.records)
    columns = {c["name"]: str(c["type"]) for c in sa.inspect(engine).get_columns("flights")}
    assert columns["id"] == "BIGINT" and columns["delay"] in ("FLOAT", "DOUBLE", "REAL")
    extract = [r for r in api.requests if "by_" in r]
    assert len(extract) >= 3  # three pages of three, the last one short (or with no next link)


def test_incremental_sends_the_watermark_and_upserts_only_newer_records(api, api_project, tmp_path):
    api_project(
        flights_section(
            "next", "mode = incremental\nwatermark = updated_at\nwatermark_param = updated_since\ncolumns = delay float"
        )
    )
    assert load("flights") == 7
    engine = warehouse(tmp_path)
    assert read_state(engine, "flights")["watermark"] is not None
    api.requests.clear()
    api.records[2] = {**record(3, day=2), "carrier": "B6"}  # changed since
    api.records.append(record(9, day=2))  # new
    assert load("flights") == 8
    assert any("updated_since=2024-01-01T00%3A00%3A07" in r for r in api.requests), api.requests
    rows = dict(r[:2] for r in table_rows(engine, "flights"))  # id: carrier
    assert rows[3] == "B6" and rows[9] == "UA" and len(rows) == 8
    api.requests.clear()
    assert load("flights") == 8  # nothing new: the columns still come from page 1 of the whole collection
    assert table_rows(engine, "flights")[0][0] == 1


def test_a_record_with_no_watermark_is_read_by_every_incremental_load(api, api_project, tmp_path):
    "As from a database: a NULL watermark is not below the stored one, so the record is read (and upserted) again."
    api.records.append({**record(8), "updated_at": None})
    api_project(flights_section("page", "mode = incremental\nwatermark = updated_at\ncolumns = delay float"))
    assert load("flights") == 8
    api.records[-1] = {**api.records[-1], "carrier": "B6"}  # changed, still with no time
    assert load("flights") == 8
    rows = dict(r[:2] for r in table_rows(warehouse(tmp_path), "flights"))  # id: carrier
    assert rows[8] == "B6" and len(rows) == 8


def test_a_full_and_an_incremental_load_land_exact_in_a_postgresql_warehouse(api, api_project, pg_databases):
    "Both kinds of load from the API, into PostgreSQL: every value as the API gave it, the types the pages say."
    api.records.append({**record(8), "crew": None})
    recent = flights_section(
        "next", "mode = incremental\nwatermark = updated_at\nwatermark_param = updated_since\ncolumns = delay float"
    ).replace("[table:flights]", "[table:recent]")
    api_project(flights_section("page") + "\n" + recent, warehouse=pg_databases["warehouse"])
    engine = make_engine(pg_databases["warehouse"])
    try:
        assert load("flights") == 8 and load("recent") == 8
        columns = {c["name"]: str(c["type"]) for c in sa.inspect(engine).get_columns("flights")}
        assert (columns["id"], columns["delay"], columns["crew"]) == ("BIGINT", "DOUBLE PRECISION", "TEXT"), columns
        api.records[2] = {**record(3, day=2), "carrier": "B6"}  # changed since
        api.records.append(record(9, day=2))  # new
        api.requests.clear()
        assert load("flights") == 9 and load("recent") == 9
        assert any("updated_since=2024-01-01T00%3A00%3A08" in r for r in api.requests), api.requests
        for table in ("flights", "recent"):
            with engine.connect() as conn:
                rows = conn.execute(sa.text(f"SELECT id, carrier, delay, crew, updated_at FROM {table}"))
                assert sorted(tuple(r) for r in rows) == expected(api.records), table
        assert decode_watermark(read_state(engine, "recent")["watermark"]) == "2024-01-02T00:00:09"
    finally:
        engine.dispose()  # the fixture drops the database after the test


def fail_load(message: str) -> PipelineError:
    with pytest.raises(PipelineError) as failed:
        load("flights")
    assert message in str(failed.value), str(failed.value)
    return failed.value


@pytest.mark.parametrize(
    "fault, message",
    [
        (
            "500",
            "page 2 (http://127.0.0.1:{port}/v1/by_page?limit=3&page=2): the server answered 500 Internal Server Error, 3 times",
        ),
        ("slow", "page 2 (http://127.0.0.1:{port}/v1/by_page?limit=3&page=2): no answer within 0.5 s, 3 times"),
        ("html", "page 2 (http://127.0.0.1:{port}/v1/by_page?limit=3&page=2): the answer is not JSON (text/html)"),
        (
            "no records",
            "page 2 (http://127.0.0.1:{port}/v1/by_page?limit=3&page=2): the answer has no `data.items` (it has: error)",
        ),
    ],
)
def test_a_failing_page_is_named_and_the_previous_table_is_kept(fault, message, api, api_project, tmp_path):
    api_project(flights_section("page"))
    assert load("flights") == 7
    engine = warehouse(tmp_path)
    before = table_rows(engine, "flights")
    api.records.append(record(8))
    api.faults[2] = fault
    error = fail_load(message.format(port=api.server.server_address[1]))
    assert "\n" not in str(error)
    assert table_rows(engine, "flights") == before  # the previous live table stays
    assert read_state(engine, "flights")["rows"] == 7
    assert not [t for t in sa.inspect(engine).get_table_names() if t.startswith("_staging_")]
    if fault == "500":
        assert sum("page=2" in r for r in api.requests) == 2 + 3  # the first load read it twice (rows, count); 3 tries


def test_a_column_that_changes_type_across_pages_is_drift_named_by_its_page(api, api_project, tmp_path):
    api.records[4:6] = [{**record(5), "delay": "late"}, {**record(6), "delay": "later"}]  # page 2: text
    api_project(flights_section("page"))
    fail_load(
        f"page 2 (http://127.0.0.1:{api.server.server_address[1]}/v1/by_page?limit=3&page=2): the column delay is string where page 1 gave double"
    )
    api_project(flights_section("page", "columns = delay text"))  # the fix the message gives
    assert load("flights") == 7


def test_a_secret_token_is_never_printed_logged_or_stored(api, api_project, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    settings = api_project(flights_section("page"))
    key = "key-in-the-url-0c4d"  # an API that takes its key as a parameter of the source's URL
    settings.write_text(settings.read_text().replace(f"api = {api.url}", f"api = {api.url}?api_key={key}"))
    assert load("flights") == 7
    assert all(f"api_key={key}" in r for r in api.requests), api.requests  # sent with every page
    monkeypatch.setenv("API_TOKEN", "wrong-" + TOKEN)
    port = api.server.server_address[1]
    error = fail_load(
        f"page 1 (http://127.0.0.1:{port}/v1/by_page?api_key=***&limit=3&page=1): the API refused the credentials "
        "(401 Unauthorized). Check the token in API_TOKEN (the table's `headers` send it)."
    )
    monkeypatch.delenv("API_TOKEN")
    fail_load(
        "[table:flights] headers: environment variable API_TOKEN is not set. Set it, or put API_TOKEN=... in .env."
    )
    assert "HTTP Request" not in caplog.text  # httpx's own lines, which name the whole URL, are not logged
    assert TOKEN not in str(error) and TOKEN not in caplog.text and key not in caplog.text and key not in str(error)
    assert TOKEN not in settings.read_text()
    engine = warehouse(tmp_path)
    with engine.connect() as conn:  # every table the kit keeps (the run log, the load state) holds no token
        for name in sa.inspect(engine).get_table_names():
            dump = json.dumps(
                [list(map(str, r)) for r in conn.execute(sa.select(sa.text("*")).select_from(sa.table(name)))]
            )
            assert TOKEN not in dump, name


def test_the_source_describes_itself_without_its_url(api, api_project):
    from my_package.common.sources import describe_source, open_source

    assert describe_source(api.url + "?api_key=s3cret") == "http api"
    assert open_source(api.url).describe() == "http api"
    assert "s3cret" not in repr(open_source(api.url + "?api_key=s3cret"))


def test_new_table_from_an_api_checks_the_endpoint_and_writes_no_secret(api, api_project, tmp_path):
    settings_path = api_project("")
    before = settings_path.read_text()
    header = ("headers", "Authorization: Bearer ${API_TOKEN}")
    keys = (("records", "data.items"), ("paginate", "offset"), ("limit", "3"), header)
    for source, key, found in [
        ("by_page", "flight_id", "primary_key: 'flight_id' not among its source's columns (id, carrier, delay"),
        ("nowhere", "id", "the API answered 404 Not Found. Check the table's `path`."),
    ]:
        with pytest.raises(PipelineError) as refused:
            register_table(load_settings(settings_path), NewTable("flights", source, key, origin="api", api=keys))
        assert found in str(refused.value)
        assert settings_path.read_text() == before
    register_table(load_settings(settings_path), NewTable("flights", "by_offset", "id", origin="api", api=keys))
    text = settings_path.read_text()
    assert "path = by_offset\nprimary_key = id\nrecords = data.items\npaginate = offset\nlimit = 3\n" in text
    assert "headers =\n    Authorization: Bearer ${API_TOKEN}\n" in text and TOKEN not in text
    assert load("flights") == 7


# not `flights`: the demo ships a report notebook of that name
def test_a_table_from_an_api_runs_with_its_report_from_the_command_line_and_no_secret_shows(
    cli, prefect_server, api, tmp_path, monkeypatch
):
    # the token comes from the project's .env alone: a variable set in the environment wins over .env (as dotenv
    # does), and a test before this one in the same worker may have left another token there
    monkeypatch.delenv("API_TOKEN", raising=False)
    settings = tmp_path / "settings.ini"
    settings.write_text(f"[profile:default]\napi = {api.url}\nwarehouse = sqlite:///{tmp_path / 'warehouse.db'}\n")
    (tmp_path / ".env").write_text(f"API_TOKEN={TOKEN}\n")  # where a project keeps its token
    args = ["--from", "api", "--source", "by_link", "--key", "id", "--records", "data.items", "--paginate", "next"]
    args += ["--next", "links.next", "--header", "Authorization: Bearer ${API_TOKEN}", "--incremental", "updated_at"]
    added = cli("new-table", "departures", *args, "--watermark-param", "updated_since", "--run", settings=settings)
    assert added.returncode == 0, added.stdout + added.stderr
    assert len(table_rows(warehouse(tmp_path), "departures")) == 7
    report = tmp_path / "reports" / "default" / "departures.html"
    assert report.exists(), added.stdout
    listed = cli("tables", settings=settings)
    checked = cli("check", settings=settings)  # the API answers, the endpoint's first page has the key
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (tmp_path / ".env").write_text("API_TOKEN=not-the-token\n")
    refused = cli("run", "departures", settings=settings)
    assert refused.returncode != 0 and "refused the credentials (401 Unauthorized)" in refused.stdout + refused.stderr
    assert "Check the token in API_TOKEN" in refused.stdout + refused.stderr
    shown = [added, listed, checked, refused]
    assert all(TOKEN not in p.stdout + p.stderr for p in shown)
    assert "http api" in listed.stdout or "by_link" in listed.stdout, listed.stdout
    assert TOKEN not in settings.read_text() and "${API_TOKEN}" in settings.read_text()
    assert TOKEN not in report.read_text() and TOKEN not in (tmp_path / "prefect.yaml").read_text()
    engine = warehouse(tmp_path)
    with engine.connect() as conn:  # the run log and the load state
        for name in sa.inspect(engine).get_table_names():
            rows = conn.execute(sa.select(sa.text("*")).select_from(sa.table(name)))
            assert TOKEN not in json.dumps([list(map(str, r)) for r in rows]), name
    logs = httpx.post(f"{prefect_server['api']}/logs/filter", json={"limit": 200, "sort": "TIMESTAMP_DESC"}).json()
    assert any("departures" in log["message"] for log in logs)  # the runs' logs are there to read
    assert not [log["message"] for log in logs if TOKEN in log["message"]]
