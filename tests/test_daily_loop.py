"""The daily loop: a new table in one step (no Python edited), help texts, usage errors, a light `tables`."""

from __future__ import annotations

import hashlib
import shutil

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
