"""Derived tables: a data scientist's notebook becomes a checked, documented, deployed transform flow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import CARRIER_TRANSFORM, ROOT, fresh_clone, table_rows, write_project

from my_package.common.db import make_engine

BIN = Path(sys.executable).parent
DAILY_ORIGIN_DELAYS = """#| export
def daily_origin_delays(warehouse: sa.Engine) -> pd.DataFrame:
    "One row per origin airport and day: flights that left, their mean departure delay, the airport's name."
    flights = pd.read_sql_table("flights", warehouse)
    airports = pd.read_sql_table("airports", warehouse)[["faa", "name"]]
    per_day = flights.groupby(["origin", "year", "month", "day"], as_index=False).agg(
        flights=("flight", "size"), mean_dep_delay=("dep_delay", "mean")
    )
    return per_day.merge(airports, left_on="origin", right_on="faa", how="left").drop(columns="faa")"""


def independent_daily_origin_delays(source: sa.Engine) -> pd.DataFrame:
    "daily_origin_delays computed with pandas straight from the source, not through the kit."
    flights = pd.read_sql("SELECT origin, year, month, day, dep_delay FROM flights", source)
    names = pd.read_sql("SELECT faa AS origin, name FROM airports", source)
    grouped = flights.groupby(["origin", "year", "month", "day"])
    out = pd.DataFrame({"flights": grouped.size(), "mean_dep_delay": grouped["dep_delay"].mean()}).reset_index()
    return out.merge(names, on="origin", how="left")


def test_a_data_scientist_adds_a_derived_table_from_a_notebook(cli, tmp_path, demo_source):
    project = fresh_clone(tmp_path / "clone")
    (project / "data").mkdir()
    shutil.copy(demo_source, project / "data" / "source.db")
    settings = project / "settings.ini"
    added = cli(
        "new-transform", "daily_origin_delays", "--inputs", "flights,airports", "--key", "origin,year,month,day",
        "--notebook", settings=settings,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    page = project / "nbs" / "transforms" / "daily_origin_delays.ipynb"
    assert "[transform:daily_origin_delays]" in settings.read_text()

    notebook = nbformat.read(page, as_version=4)  # the data scientist writes the function, JupyterLab saves it
    [cell] = [c for c in notebook.cells if c.source.startswith("#| export\ndef daily_origin_delays")]
    cell.source = DAILY_ORIGIN_DELAYS
    nbformat.write(notebook, page)
    exported = subprocess.run([str(BIN / "nbdev_export")], cwd=project, capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    assert (project / "my_package" / "transforms" / "daily_origin_delays.py").exists()

    loaded = cli("run", "flights", "airports", "--no-reports", settings=settings)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    built = cli("run", "daily_origin_delays", settings=settings)
    assert built.returncode == 0, built.stdout + built.stderr
    warehouse, source = (
        make_engine(f"sqlite:///{project / 'data' / 'warehouse.db'}"),
        make_engine(f"sqlite:///{demo_source}"),
    )
    got = pd.read_sql("SELECT * FROM daily_origin_delays", warehouse).sort_values(["origin", "year", "month", "day"])
    want = independent_daily_origin_delays(source).sort_values(["origin", "year", "month", "day"])
    assert len(got) == len(want) == 1095
    pd.testing.assert_frame_equal(
        got[want.columns].reset_index(drop=True), want.reset_index(drop=True), check_dtype=False
    )

    reported = cli("report", "daily_origin_delays", settings=settings)
    assert reported.returncode == 0, reported.stderr
    assert "daily_origin_delays" in (project / "reports" / "default" / "daily_origin_delays.html").read_text()
    assert cli("deployments", "--check", settings=settings).returncode == 0
    deployment = (project / "prefect.yaml").read_text().split("- name: transform-daily_origin_delays")[1]
    assert "my_package.flows.transform:transform_daily_origin_delays" in deployment and "ingest-airports" in deployment
    synced = subprocess.run(  # no Python file was edited by hand: the package is exactly what the notebooks export
        ["bash", "tools/check_notebooks.sh"], cwd=project, env={"BIN": str(BIN), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert synced.returncode == 0, synced.stdout + synced.stderr


SQL_TRANSFORM = (
    "\n[transform:planes_per_maker]\ninputs = planes\nprimary_key = manufacturer\n"
    "sql = SELECT manufacturer, count(*) AS planes, min(year) AS first_year FROM planes GROUP BY manufacturer\n"
)


@pytest.mark.parametrize("warehouse_kind", ["sqlite", "postgresql", "duckdb"])
def test_a_sql_transform_is_built_by_the_warehouse(warehouse_kind, cli, tmp_path, demo_source, request):
    warehouse_url = {
        "sqlite": f"sqlite:///{tmp_path / 'wh.db'}",
        "duckdb": f"duckdb:///{tmp_path / 'wh.duckdb'}",
    }.get(warehouse_kind) or request.getfixturevalue("pg_databases")["warehouse"]
    settings = write_project(tmp_path, ("planes",), f"sqlite:///{demo_source}", warehouse_url, extra=SQL_TRANSFORM)
    out = cli("run", "--all", "--no-reports", settings=settings)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "planes_per_maker: ok" in out.stderr
    planes = pd.read_sql("SELECT manufacturer, year FROM planes", make_engine(f"sqlite:///{demo_source}"))
    want = planes.groupby("manufacturer").agg(planes=("year", "size"), first_year=("year", "min")).reset_index()
    got = pd.read_sql("SELECT * FROM planes_per_maker ORDER BY manufacturer", make_engine(warehouse_url))
    pd.testing.assert_frame_equal(got, want.sort_values("manufacturer").reset_index(drop=True), check_dtype=False)
    listed = cli("tables", settings=settings)
    assert "planes_per_maker" in listed.stdout and "sql: SELECT manufacturer" in " ".join(listed.stdout.split())


def test_bad_transform_definitions_are_one_line_and_change_nothing(cli, tmp_path, demo_source):
    settings = write_project(
        tmp_path, ("planes", "airlines", "flights"), f"sqlite:///{demo_source}", "sqlite:///wh.db", extra=SQL_TRANSFORM
    )
    assert cli("run", "planes", "planes_per_maker", "--no-reports", settings=settings).returncode == 0
    warehouse = make_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    before = {t: table_rows(warehouse, t) for t in ("planes", "planes_per_maker")}
    good = settings.read_text()
    broken = {
        "a cycle": (good + "\n[transform:a]\ninputs = b\nprimary_key = x\nsql = SELECT 1 AS x\n"
                    "[transform:b]\ninputs = a\nprimary_key = x\nsql = SELECT 1 AS x\n", "a cycle"),
        "an unknown input": (good.replace("inputs = planes", "inputs = boats"), "'boats' is neither a table nor a transform"),
        "a duplicate name": (good + "\n[transform:planes]\ninputs = airlines\nprimary_key = x\nsql = SELECT 1 AS x\n",
                             "'planes' is also a table's name"),
        "a function that does not import": (
            good.replace("sql = SELECT manufacturer, count(*) AS planes, min(year) AS first_year FROM planes GROUP BY "
                         "manufacturer", "function = my_package.transforms.nowhere:planes_per_maker"),
            "cannot be loaded (ModuleNotFoundError: No module named 'my_package.transforms.nowhere')",
        ),
        "a SELECT that fails": (good.replace("min(year)", "min(no_such_column)"), "no such column: no_such_column"),
    }  # fmt: skip
    for what, (text, expected) in broken.items():
        settings.write_text(text)
        out = cli("run", "planes_per_maker", "--no-reports", settings=settings)
        assert out.returncode in (1, 2), what
        assert "Traceback" not in out.stdout + out.stderr, what
        lines = [line for line in out.stderr.splitlines() if expected in line]
        assert len(lines) == 1, (what, out.stderr)
        for table, rows in before.items():
            assert table_rows(warehouse, table) == rows, f"{what} changed {table}"
        assert not sa.inspect(warehouse).has_table("_staging_planes_per_maker"), what


def test_no_kit_code_names_the_derived_table():
    mentions = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "my_package").rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "carrier_monthly_delays" in line and path.name != "_modidx.py"
    ]
    assert mentions and all(m.startswith("my_package/transforms/carrier_monthly_delays.py") for m in mentions), mentions


def test_the_project_registers_carrier_monthly_delays_as_a_transform():
    text = (ROOT / "settings.ini").read_text()
    assert CARRIER_TRANSFORM.split("\n")[1] in text  # the section, authored as the tests' projects author it
    assert "function = my_package.transforms.carrier_monthly_delays:carrier_monthly_delays" in text
    assert (ROOT / "nbs" / "transforms" / "carrier_monthly_delays.ipynb").exists()
