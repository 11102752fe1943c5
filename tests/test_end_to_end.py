"""End to end through the command line and Prefect: every table lands with exactly the source's rows."""

from __future__ import annotations

import shutil

import pandas as pd
import sqlalchemy as sa
from conftest import CARRIER_TRANSFORM, assert_same_tables, table_rows, write_project

from my_package.common.db import make_engine
from my_package.dev.demo import DEMO_TABLES, build_demo_source


def expected_carrier_delays(source: sa.Engine) -> pd.DataFrame:
    "carrier_monthly_delays computed independently, with pandas, from the source."
    flights = pd.read_sql("SELECT carrier, year, month, dep_delay, arr_delay FROM flights", source)
    g = flights.groupby(["carrier", "year", "month"])
    out = pd.DataFrame(
        {
            "flights": g.size(),
            "mean_dep_delay": g["dep_delay"].mean(),
            "mean_arr_delay": g["arr_delay"].mean(),
            "share_late_15": g["arr_delay"].apply(lambda s: (s > 15).sum() / s.notna().sum()),
        }
    )
    return out.reset_index().sort_values(["carrier", "year", "month"]).reset_index(drop=True)


def check_transform(source: sa.Engine, warehouse: sa.Engine) -> None:
    "The derived table matches an independent pandas computation."
    got = pd.read_sql("SELECT * FROM carrier_monthly_delays", warehouse)
    got = got.sort_values(["carrier", "year", "month"]).reset_index(drop=True)
    want = expected_carrier_delays(source)
    assert len(got) == len(want) == 185
    assert got["carrier_name"].notna().all()
    pd.testing.assert_frame_equal(got[want.columns].astype(float, errors="ignore"), want, check_dtype=False)


def test_run_all_on_the_embedded_default(cli, tmp_path, demo_source):
    (tmp_path / "data").mkdir()
    shutil.copy(demo_source, tmp_path / "data" / "source.db")
    settings = write_project(
        tmp_path, DEMO_TABLES, "sqlite:///data/source.db", "sqlite:///data/warehouse.db", extra=CARRIER_TRANSFORM
    )
    out = cli("run", "--all", settings=settings)
    assert out.returncode == 0, out.stdout + out.stderr
    for noise in ("TCP without encryption", "Alternative text is missing", "KeyboardInterrupt", "Traceback", "WARNING"):
        assert noise not in out.stdout + out.stderr, f"a successful run printed {noise!r}"
    assert "waiting up to" not in out.stderr.lower(), out.stderr  # its own tables take turns unsaid: others are said
    for table in (*DEMO_TABLES, "carrier_monthly_delays"):
        assert table in out.stdout
    assert "336,776" in out.stdout
    source = make_engine(f"sqlite:///{tmp_path / 'data' / 'source.db'}")
    warehouse = make_engine(f"sqlite:///{tmp_path / 'data' / 'warehouse.db'}")
    assert_same_tables(source, warehouse)
    check_transform(source, warehouse)
    assert not [t for t in sa.inspect(warehouse).get_table_names() if t.startswith("_staging_")]

    reports = tmp_path / "reports" / "default"  # each table's executed notebook and code-free HTML page with a plot
    for table in DEMO_TABLES:
        assert (reports / f"{table}.ipynb").exists()
        page = (reports / f"{table}.html").read_text()
        assert "<img" in page and "data:image/png;base64" in page, f"{table}: no plot in the report"
        assert "hl-ipython3" not in page and "load_settings" not in page, f"{table}: code in the report"
    index = (reports / "index.html").read_text()
    assert all(f"{t}.html" in index for t in DEMO_TABLES)

    rerun = cli("run", "airlines", "planes", "--no-reports", settings=settings)  # a rerun replaces, never duplicates
    assert rerun.returncode == 0, rerun.stderr
    assert_same_tables(source, warehouse, ("airlines", "planes"))


def test_a_failed_check_fails_the_run_and_keeps_the_previous_table(cli, tmp_path, demo_source):
    settings = write_project(tmp_path, ("planes", "airlines"), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    assert cli("run", "planes", "--no-reports", settings=settings).returncode == 0
    warehouse = make_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    before = table_rows(warehouse, "planes")

    settings.write_text(settings.read_text().replace("primary_key = tailnum", "primary_key = manufacturer"))
    out = cli("run", "--all", "--no-reports", settings=settings)
    assert out.returncode == 1
    assert "Quality check failed for table 'planes'" in out.stdout + out.stderr
    assert "primary key unique" in out.stdout + out.stderr
    assert table_rows(warehouse, "planes") == before  # the previous good table is untouched
    assert table_rows(warehouse, "airlines") == table_rows(make_engine(f"sqlite:///{demo_source}"), "airlines")


def test_sqlite_source_into_a_postgresql_warehouse(cli, tmp_path, demo_source, pg_databases):
    settings = write_project(
        tmp_path, DEMO_TABLES, f"sqlite:///{demo_source}", pg_databases["warehouse"], extra=CARRIER_TRANSFORM
    )
    out = cli("run", "--all", settings=settings)
    assert out.returncode == 0, out.stdout + out.stderr
    password = make_engine(pg_databases["warehouse"]).url.password
    assert password and password not in out.stdout + out.stderr
    for page in (tmp_path / "reports").rglob("*.*"):  # reports, notebooks and the index never show the password
        assert password not in page.read_text(errors="replace"), f"password leaked into {page.name}"
    assert len(list((tmp_path / "reports" / "default").glob("*.html"))) == len(DEMO_TABLES) + 2  # transform, index
    source, warehouse = make_engine(f"sqlite:///{demo_source}"), make_engine(pg_databases["warehouse"])
    assert_same_tables(source, warehouse)
    check_transform(source, warehouse)
    columns = {c["name"]: c["type"] for c in sa.inspect(warehouse).get_columns("flights")}
    assert isinstance(columns["time_hour"], sa.DateTime), "timestamps land as timestamps, not text"


def test_postgresql_to_postgresql(cli, tmp_path, pg_databases):
    tables = ("airlines", "planes", "weather")
    build_demo_source(pg_databases["source"], tables=tables)
    settings = write_project(tmp_path, tables, pg_databases["source"], pg_databases["warehouse"])
    out = cli("run", "--all", "--no-reports", settings=settings)
    assert out.returncode == 0, out.stdout + out.stderr
    assert_same_tables(make_engine(pg_databases["source"]), make_engine(pg_databases["warehouse"]), tables)
    assert "carrier_monthly_delays" not in out.stdout or "SKIPPED" in out.stdout
