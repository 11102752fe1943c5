"""The daily loop: a new table in one step (no Python edited), help texts, usage errors, a light `tables`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pandas as pd
from conftest import ROOT, heavy_imports, table_rows, write_project

from my_package.common.db import make_engine

COMMANDS = ("demo", "tables", "run", "report", "new-table", "check", "deployments")


def python_files_digest() -> str:
    "One digest of every Python file of the package (to prove that none was edited)."
    digest = hashlib.sha256()
    for path in sorted((ROOT / "my_package").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_a_new_table_in_one_step_as_a_new_user_would(cli, tmp_path, demo_source):
    shutil.copy(demo_source, tmp_path / "source.db")
    seattle = pd.DataFrame(
        {"date": pd.date_range("2023-01-01", periods=365, freq="D"), "temp_max": range(365), "wind": [1.5] * 365}
    )
    seattle.to_sql("seattle_weather", make_engine(f"sqlite:///{tmp_path / 'source.db'}"), index=False)
    settings = write_project(tmp_path, ("airlines", "flights"), "sqlite:///source.db", "sqlite:///warehouse.db")
    assert cli("deployments", "--write", settings=settings).returncode == 0
    before = python_files_digest()

    added = cli("new-table", "seattle_weather", "--source", "seattle_weather", "--key", "date", settings=settings)
    assert added.returncode == 0, added.stderr
    assert "[table:seattle_weather]" in settings.read_text()
    ran = cli("run", "seattle_weather", settings=settings)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "seattle_weather: ok (365 rows" in ran.stderr  # the progress display, one line per table
    source, warehouse = (
        make_engine(f"sqlite:///{tmp_path / 'source.db'}"),
        make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}"),
    )
    assert table_rows(warehouse, "seattle_weather") == table_rows(source, "seattle_weather")
    reported = cli("report", "seattle_weather", settings=settings)
    assert reported.returncode == 0, reported.stderr
    assert "<img" in (tmp_path / "reports" / "default" / "seattle_weather.html").read_text()
    assert cli("deployments", "--check", settings=settings).returncode == 0
    assert python_files_digest() == before, "no Python file may change to add a table"
    listed = cli("tables", settings=settings)
    assert "seattle_weather" in listed.stdout and "ok at" in listed.stdout  # its last run


def test_new_table_refuses_bad_definitions(cli, tmp_path, demo_source):
    settings = write_project(tmp_path, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    original = settings.read_text()
    missing = cli("new-table", "boats", "--source", "boats", "--key", "id", settings=settings)
    assert missing.returncode == 1
    assert "'boats' not registered (settings.ini is unchanged): source table 'boats' does not exist" in " ".join(
        missing.stderr.split()
    )
    bad_name = cli("new-table", "Bad-Name", "--source", "airlines", "--key", "carrier", settings=settings)
    assert bad_name.returncode == 1 and "must be lower case" in bad_name.stderr
    again = cli("new-table", "airlines", "--source", "airlines", "--key", "carrier", settings=settings)
    assert again.returncode == 2 and "already registered" in again.stderr
    assert settings.read_text() == original  # nothing written on a refusal


def test_every_command_has_help_with_an_example_and_wrong_arguments_exit_2(cli, tmp_path):
    settings = write_project(tmp_path, ("airlines",), "sqlite:///s.db", "sqlite:///w.db")
    for command in COMMANDS:
        out = cli(command, "--help", settings=settings)
        assert out.returncode == 0, out.stderr
        assert "Example" in out.stdout, f"`{command} --help` shows no example"
    wrong = cli("run", "--no-such-option", settings=settings)
    assert wrong.returncode == 2 and "No such option" in wrong.stderr
    assert cli("no-such-command", settings=settings).returncode == 2


def test_tables_imports_neither_prefect_nor_pandas(tmp_path):
    settings = write_project(tmp_path, ("airlines",), "sqlite:///s.db", "sqlite:///w.db")
    out = heavy_imports(["tables"], settings, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_table_registered_in_a_running_process_loads_without_a_restart(tmp_path, demo_source, prefect_server):
    shutil.copy(demo_source, tmp_path / "source.db")
    settings = write_project(tmp_path, ("airlines",), "sqlite:///source.db", "sqlite:///warehouse.db")
    # one Python process, as a JupyterLab kernel: the flows imported (and used) first, then new-table, then a run
    code = """
import my_package.flows.ingestion as ingestion
from my_package.cli import new_table

assert ingestion.ingest_airlines(report=False).rows == 16
new_table("fleet", source="planes", key="tailnum")
print("ROWS", ingestion.ingest_fleet(report=False).rows)
"""
    env = {
        **os.environ,
        "MY_PACKAGE_SETTINGS": str(settings),
        "PREFECT_API_URL": prefect_server["api"],
        "PREFECT_HOME": str(prefect_server["home"]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ROWS 3322" in out.stdout
    warehouse = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    assert table_rows(warehouse, "fleet") == table_rows(make_engine(f"sqlite:///{tmp_path / 'source.db'}"), "planes")


def test_a_source_table_whose_name_starts_like_a_query_is_a_table(cli, tmp_path):
    source = make_engine(f"sqlite:///{tmp_path / 'bank.db'}")
    pd.DataFrame({"id": [1, 2, 3], "amount": [10.5, 20.0, 7.25]}).to_sql("withdrawals", source, index=False)
    settings = tmp_path / "settings.ini"
    settings.write_text("[pipeline]\n[profile:default]\nsource = sqlite:///bank.db\nwarehouse = sqlite:///wh.db\n")
    added = cli("new-table", "withdrawals", "--source", "withdrawals", "--key", "id", settings=settings)
    assert added.returncode == 0, added.stderr
    assert "source_table = withdrawals" in settings.read_text() and "query =" not in settings.read_text()
    ran = cli("run", "withdrawals", "--no-reports", settings=settings)
    assert ran.returncode == 0, ran.stderr
    assert table_rows(make_engine(f"sqlite:///{tmp_path / 'wh.db'}"), "withdrawals") == table_rows(
        source, "withdrawals"
    )
