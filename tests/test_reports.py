"""Table reports: the parameters tag, parameter and table checks, a failing notebook, every table shape, concurrent rendering."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import ROOT, write_project
from papermill.iorw import papermill_io

from my_package.common.db import make_engine
from my_package.common.loads import write_frame_atomically
from my_package.common.runs import resolve_run
from my_package.dev.demo import demo_frame
from my_package.errors import ReportError, UnknownTableError
from my_package.registry.settings import load_settings
from my_package.reporting.render import check_report_parameters, render_report

TEMPLATE = ROOT / "nbs" / "tables" / "table_report.ipynb"


def test_the_committed_report_notebook_keeps_its_parameters_tag():
    cells = json.loads(TEMPLATE.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    assert "table = " in "".join(tagged[0]["source"]) and "profile = " in "".join(tagged[0]["source"])


def test_nbdev_clean_keeps_the_parameters_tag(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    for name in ("nbs", "my_package"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    copy = tmp_path / "nbs" / "tables" / "table_report.ipynb"
    nb = json.loads(copy.read_text())
    nb["cells"][2]["metadata"]["collapsed"] = True  # something nbdev_clean must remove
    copy.write_text(json.dumps(nb))
    subprocess.run([str(Path(sys.executable).parent / "nbdev_clean")], cwd=tmp_path, check=True, capture_output=True)
    cleaned = json.loads(copy.read_text())["cells"]
    assert [c["metadata"] for c in cleaned if c["metadata"]] == [{"tags": ["parameters"]}]


def test_an_unknown_parameter_is_an_error_not_a_warning():
    with pytest.raises(ReportError, match=r"Unknown report parameter\(s\) colour .* declares table, profile"):
        check_report_parameters(TEMPLATE, {"table": "flights", "colour": "red"})


def test_an_unregistered_table_is_refused(cli, tmp_path):
    settings = write_project(tmp_path, ("airlines", "planes"), "sqlite:///s.db", "sqlite:///w.db")
    out = cli("report", "cars", settings=settings)
    assert out.returncode == 2 and "Registered tables: airlines, planes" in out.stderr
    with pytest.raises(UnknownTableError, match="Registered tables: airlines, planes"):
        resolve_run("cars", settings=load_settings(settings))


def test_a_failing_report_names_table_and_cell_and_keeps_the_notebook(cli, tmp_path, demo_source):
    settings = write_project(tmp_path, ("airlines", "planes"), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    assert cli("run", "--all", "--no-reports", settings=settings).returncode == 0
    broken = tmp_path / "broken_report.ipynb"
    nb = json.loads(TEMPLATE.read_text())
    nb["cells"].insert(
        4,
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "b0rked01",
            "metadata": {},
            "outputs": [],
            "source": 'if table == "planes":\n    raise ValueError("no planes today")',
        },
    )
    broken.write_text(json.dumps(nb))
    out = cli("report", "airlines", "planes", settings=settings, env={"MY_PACKAGE_REPORT_NOTEBOOK": str(broken)})
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert "Report of table 'planes' failed in cell" in text and "ValueError: no planes today" in text
    kept = json.loads((tmp_path / "reports" / "default" / "planes.ipynb").read_text())
    assert any(o.get("ename") == "ValueError" for c in kept["cells"] for o in c.get("outputs", []))
    assert (tmp_path / "reports" / "default" / "airlines.html").exists(), "the other table's report is still rendered"
    index = (tmp_path / "reports" / "default" / "index.html").read_text()
    assert "no planes today" in index and 'href="airlines.html"' in index


def test_a_wait_in_a_reports_kernel_goes_to_the_reports_log_not_into_the_page(cli, tmp_path, demo_source):
    "A report's kernel waiting (for a DuckDB file another report holds, say) says so in the reports' log, not the page."
    settings = write_project(tmp_path, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    assert cli("run", "--all", "--no-reports", settings=settings).returncode == 0
    waiting = tmp_path / "waiting_report.ipynb"
    nb = json.loads(TEMPLATE.read_text())
    said = "waiting up to 2 min for w.duckdb, held by process 4242 (my_package report --all)"
    nb["cells"].insert(
        4,
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "wa1t0001",
            "metadata": {},
            "outputs": [],
            "source": f"from my_package.common.waits import announce\n\nannounce({said!r})  # as the engine's Wait says it",
        },
    )
    waiting.write_text(json.dumps(nb))
    out = cli("report", "airlines", settings=settings, env={"MY_PACKAGE_REPORT_NOTEBOOK": str(waiting)})
    assert out.returncode == 0, out.stdout + out.stderr
    kept = json.loads((tmp_path / "reports" / "default" / "airlines.ipynb").read_text())
    outputs = json.dumps([c.get("outputs", []) for c in kept["cells"]])
    assert "w.duckdb" not in outputs, outputs  # the line as said starts "Waiting"; the cell's source, "waiting"
    assert "Waiting up to 2 min" not in (tmp_path / "reports" / "default" / "airlines.html").read_text()
    assert (
        "Waiting up to 2 min for w.duckdb, held by process 4242" in (tmp_path / ".prefect" / "reports.log").read_text()
    )


def shape_frames() -> dict[str, pd.DataFrame]:
    "The table shapes every report must render: empty, one row, all-NULL columns, text only, 300 columns, normal."
    flights = demo_frame("flights").head(2000)
    rng = np.random.default_rng(13)
    wide = {"id": np.arange(40)}
    for i in range(299):  # numbers, decimals, text, timestamps, booleans and a NULL-only column, in turn
        wide[f"c{i:03d}"] = [
            rng.normal(size=40),
            [Decimal(f"{k}.25") for k in range(40)],
            [f"s{k % 7}" for k in range(40)],
            pd.date_range("2024-01-01", periods=40, freq="D", tz="UTC"),
            [k % 2 == 0 for k in range(40)],
            pd.Series([None] * 40, dtype="float64"),
        ][i % 6]
    return {
        "empty": flights.head(0),
        "one_row": flights.head(1),
        "all_null": pd.DataFrame(
            {
                "code": ["a", "b", "c"],
                "amount": pd.Series([None] * 3, dtype="float64"),
                "note": [None] * 3,
                "seen_at": pd.Series([pd.NaT] * 3, dtype="datetime64[ns, UTC]"),
            }
        ),
        "text_only": pd.DataFrame({"name": ["x", "y", "z"], "colour": ["red", None, "blue"]}),
        "wide": pd.DataFrame(wide),
        "normal": flights,
    }


def test_the_generic_report_renders_every_table_shape(tmp_path, monkeypatch):
    warehouse = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    for name, frame in shape_frames().items():
        write_frame_atomically(warehouse, frame, name)
    flight_key = "year, month, day, hour, minute, carrier, flight, origin"
    keys = {"empty": flight_key, "one_row": flight_key, "all_null": "code", "wide": "id", "normal": flight_key}
    sections = [f"[table:{name}]\nsource_table = {name}\nprimary_key = {key}\n" for name, key in keys.items()]
    sections.append("[table:text_only]\nquery = SELECT name, colour FROM text_only\nprimary_key = name\n")
    settings = tmp_path / "settings.ini"
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    settings.write_text(f"[profile:default]\nsource = {url}\nwarehouse = {url}\n" + "".join(sections))
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    monkeypatch.delenv("MY_PACKAGE_REPORT_NOTEBOOK", raising=False)
    elsewhere = tmp_path / "elsewhere"  # the kernels start in the project, and the process stays where it was
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # papermill's own local handler keeps the directory of its moment and chdirs there around each write: renderings
    # in threads once left it on another test's directory, and this test failed in CI. Start from such a one (the
    # notebook's test of papermill_in_place shows the chdirs every time; here they show only when threads interleave)
    papermill_io.get_handler("local").cwd(str(tmp_path))
    with ThreadPoolExecutor(max_workers=3) as pool:  # render_report is safe in threads (the Prefect flow's way)
        names = [*keys, "text_only"]
        results = dict(zip(names, pool.map(lambda name: render_report(resolve_run(name)), names), strict=True))
    assert Path.cwd() == elsewhere, "rendering in threads moved the process's working directory"
    pages = {name: result.html.read_text() for name, result in results.items()}
    for name, result in results.items():
        assert result.html == tmp_path / "reports" / "default" / f"{name}.html" and result.html.exists()
        outputs = [o for c in json.loads(result.notebook.read_text())["cells"] for o in c.get("outputs", [])]
        assert not [o for o in outputs if o["output_type"] == "error" or o.get("name") == "stderr"], name
        assert "Traceback" not in pages[name] and 'data-mime-type="application/vnd.jupyter.stderr"' not in pages[name]
    bars = 'alt="Bar charts of the share of NULLs and the number of distinct values in '
    plots = (bars, 'alt="Histograms of ', 'alt="A line chart of the number of rows of ')
    assert "0 rows" in pages["empty"] and pages["empty"].count("The table is empty.") == 5
    assert "<img" not in pages["empty"]
    assert "1 row</strong>" in pages["one_row"] and all(p in pages["one_row"] for p in plots)
    assert bars + "each column of all_null." in pages["all_null"]
    assert "No numeric value to plot: every numeric column is NULL in the 3 rows sampled." in pages["all_null"]
    assert "No date to plot: <code>seen_at</code> is NULL in every row." in pages["all_null"]
    assert bars + "each column of text_only." in pages["text_only"]
    assert (
        "No numeric column to plot." in pages["text_only"]
        and "No date or timestamp column to plot." in pages["text_only"]
    )
    assert "300 columns" in pages["wide"] and bars + "the first 60 of the 300 columns of wide." in pages["wide"]
    assert all(p in pages["wide"] for p in plots)
    assert "Histograms of id, c000, c001, c006, c007," in pages["wide"], "decimals plotted, NULL-only columns not"
    assert all(p in pages["normal"] for p in plots) and "2,000 rows" in pages["normal"]


def test_reports_render_only_when_what_they_show_changed(cli, tmp_path, demo_source):
    shutil.copy(demo_source, tmp_path / "source.db")
    settings = write_project(tmp_path, ("airlines", "planes"), "sqlite:///source.db", "sqlite:///wh.db")
    pages = tmp_path / "reports" / "default"

    def rendered() -> dict[str, int]:
        return {p.stem: p.stat().st_mtime_ns for p in pages.glob("*.html") if p.name != "index.html"}

    first = cli("run", "--all", "--wait", settings=settings)
    assert first.returncode == 0, first.stderr
    before = rendered()
    assert set(before) == {"airlines", "planes"}
    again = cli("run", "--all", "--wait", settings=settings)  # the same rows again: nothing the reports show changed
    assert again.returncode == 0, again.stderr
    assert rendered() == before, "no report is rendered when nothing it shows changed"
    assert again.stdout.count("unchanged since") == 2, again.stdout

    with sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}").begin() as conn:  # new data for planes
        conn.exec_driver_sql("UPDATE planes SET seats = seats + 1 WHERE tailnum = 'N10156'")
    assert cli("run", "--all", "--wait", settings=settings).returncode == 0
    now = rendered()
    assert now["planes"] != before["planes"] and now["airlines"] == before["airlines"]

    own = tmp_path / "nbs" / "tables" / "airlines.ipynb"  # a notebook of its own: airlines' report changes
    own.parent.mkdir(parents=True)
    shutil.copy(TEMPLATE, own)
    assert cli("report", "airlines", "planes", settings=settings).returncode == 0
    after_notebook = rendered()
    assert after_notebook["airlines"] != now["airlines"] and after_notebook["planes"] == now["planes"]
    forced = cli("report", "--all", "--force", settings=settings)
    assert forced.returncode == 0, forced.stderr
    assert all(rendered()[name] != after_notebook[name] for name in ("airlines", "planes"))
    listed = cli("tables", "--wide", settings=settings)
    assert "generic: ok" in listed.stdout and "own notebook: ok" in listed.stdout and "(run " in listed.stdout


def wide_table_sql(columns: list[str], width: int = 500) -> str:
    "SQL that makes `wide`: `id` and `width - 1` columns copied from `everything`'s, every type in turn."
    others = [c for c in columns if c != "id"]
    copies = ", ".join(f"{others[i % len(others)]} AS c{i:03d}" for i in range(width - 1))
    return f"CREATE TABLE wide AS SELECT id, {copies} FROM everything; ALTER TABLE wide ADD PRIMARY KEY (id)"


def test_the_generic_report_renders_every_type_on_every_warehouse(tmp_path, pg_databases, monkeypatch):
    # one column of each type the kit maps (README: "How each PostgreSQL type lands"), BOOLEAN, JSON, arrays and
    # intervals among them; the same table empty; 500 columns of them. PostgreSQL has no min(boolean) and no
    # equality for json, xml or point: the report's aggregates must not ask for them
    from conftest import load
    from test_registry import PG_TYPES

    source = make_engine(pg_databases["source"])
    with source.begin() as conn:
        conn.exec_driver_sql(PG_TYPES)
        conn.exec_driver_sql("CREATE TABLE everything_empty AS SELECT * FROM everything WHERE false")
        conn.exec_driver_sql("ALTER TABLE everything_empty ADD PRIMARY KEY (id)")
    columns = [c["name"] for c in sa.inspect(source).get_columns("everything")]
    with source.begin() as conn:
        conn.exec_driver_sql(wide_table_sql(columns))
    sections = "".join(
        f"[table:{t}]\nsource_table = {t}\nprimary_key = id\n" for t in ("everything", "everything_empty", "wide")
    )
    monkeypatch.delenv("MY_PACKAGE_REPORT_NOTEBOOK", raising=False)
    runs = []
    for kind, warehouse in (
        ("postgresql", pg_databases["warehouse"]),
        ("sqlite", f"sqlite:///{tmp_path / 'sqlite' / 'w.db'}"),
        ("duckdb", f"duckdb:///{tmp_path / 'duckdb' / 'w.duckdb'}"),
    ):
        settings = tmp_path / kind / "settings.ini"
        settings.parent.mkdir(exist_ok=True)
        settings.write_text(
            f"[pipeline]\n[profile:default]\nsource = {source.url.render_as_string(False)}\nwarehouse = {warehouse}\n{sections}"
        )
        monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
        assert [load(t) for t in ("everything", "everything_empty", "wide")] == [2, 0, 2]
        runs += [resolve_run(t, settings=load_settings(settings)) for t in ("everything", "everything_empty", "wide")]

    monkeypatch.delenv("MY_PACKAGE_SETTINGS")  # each report's kernel reads the settings.ini of its project

    def render(run) -> tuple[str, str | None]:
        try:
            return render_report(run).html.read_text(), None
        except Exception as e:  # every failure is listed, not only the first
            return "", f"{run.profile.warehouse.split(':')[0]} {run.name}: {e}"

    def render_in_turn(group: list) -> list[tuple[str, str | None]]:
        return [render(run) for run in group]  # one warehouse's reports in turn: a DuckDB file is one process's

    groups = [runs[i : i + 3] for i in range(0, len(runs), 3)]  # each warehouse's three tables
    with ThreadPoolExecutor(max_workers=2) as pool:
        rendered = [page for group in pool.map(render_in_turn, groups) for page in group]
    assert not [error for _, error in rendered if error], [error for _, error in rendered if error]
    for run, (page, _) in zip(runs, rendered, strict=True):
        where = f"{run.profile.warehouse.split(':')[0]} {run.name}"
        outputs = [o for c in json.loads((run.project / "reports" / "default" / f"{run.name}.ipynb").read_text())["cells"]
                   for o in c.get("outputs", [])]  # fmt: skip
        assert not [o for o in outputs if o["output_type"] == "error" or o.get("name") == "stderr"], where
        assert "Traceback" not in page, where
        if run.name == "everything_empty":
            assert "0 rows" in page and page.count("The table is empty.") == 5, where
        elif run.name == "wide":
            assert "2 rows</strong>, 500 columns" in page and "the first 60 of the 500 columns of wide" in page, where
        else:
            assert f"2 rows</strong>, {len(columns)} columns" in page, where
            assert all(f">{name}<" in page for name in columns), where  # every column profiled


def test_a_report_that_fails_before_its_notebook_runs_is_recorded_and_shown_failed(cli, tmp_path, demo_source):
    settings = write_project(tmp_path, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    assert cli("run", "airlines", "--no-reports", settings=settings).returncode == 0
    missing = {"MY_PACKAGE_REPORT_NOTEBOOK": str(tmp_path / "gone.ipynb")}  # fails before any cell runs
    out = cli("report", "airlines", settings=settings, env=missing)
    assert out.returncode == 1, out.stdout + out.stderr
    entry = json.loads((tmp_path / "reports" / "default" / "reports.json").read_text())["airlines"]
    assert entry["status"] == "failed" and "gone.ipynb not found" in entry["error"], entry
    index = (tmp_path / "reports" / "default" / "index.html").read_text()
    assert "FAILED at" in index and "gone.ipynb not found" in index
    listed = cli("tables", settings=settings)
    assert "FAILED" in listed.stdout and "report of airlines FAILED" in listed.stderr, listed.stdout + listed.stderr
