"""The command line: help, usage errors, and clear one-line errors for bad input (passwords masked)."""

from __future__ import annotations

import pytest
from conftest import CARRIER_TRANSFORM, load, write_project

from my_package.errors import QualityCheckError


def test_help_lists_every_command_with_an_example(cli, tmp_path):
    settings = write_project(tmp_path, ("airlines",), "sqlite:///data/source.db", "sqlite:///data/warehouse.db")
    out = cli("--help", settings=settings)
    assert out.returncode == 0
    for command in ("demo", "tables", "run", "deployments"):
        assert command in out.stdout
    run_help = cli("run", "--help", settings=settings)
    assert "--all" in run_help.stdout and "--profile" in run_help.stdout and "Examples:" in run_help.stdout


def test_tables_lists_the_registry(cli, tmp_path):
    settings = write_project(tmp_path, ("airlines", "planes"), "sqlite:///s.db", "sqlite:///w.db")
    out = cli("tables", settings=settings)
    assert out.returncode == 0, out.stderr
    assert "ingest-airlines" in out.stdout and "ingest-planes" in out.stdout and "tailnum" in out.stdout


def test_run_needs_tables_or_all(cli, tmp_path):
    settings = write_project(tmp_path, ("airlines",), "sqlite:///s.db", "sqlite:///w.db")
    out = cli("run", settings=settings)
    assert out.returncode == 2
    assert "give table names or --all" in out.stderr


def test_unknown_table_lists_the_known_ones_and_exits_2(cli, tmp_path):
    settings = write_project(tmp_path, ("airlines", "planes"), "sqlite:///s.db", "sqlite:///w.db")
    out = cli("run", "cars", settings=settings)
    assert out.returncode == 2
    assert "Unknown table 'cars'. Registered tables: airlines, planes" in out.stderr
    assert "Traceback" not in out.stderr


def test_registry_section_missing_its_source(cli, tmp_path):
    settings = tmp_path / "settings.ini"
    settings.write_text(
        "[pipeline]\n[profile:default]\nsource = sqlite:///s.db\nwarehouse = sqlite:///w.db\n"
        "[table:orders]\nprimary_key = id\n"
    )
    out = cli("tables", settings=settings)
    assert out.returncode == 1
    assert "settings.ini [table:orders]: give exactly one of source_table" in out.stderr
    assert "source_table = orders" in out.stderr  # the fix
    assert "Traceback" not in out.stderr


def test_unreachable_database_is_named_with_its_password_masked(cli, tmp_path, demo_source):
    password = "Very-Secret-Pass-0815"
    settings = write_project(
        tmp_path,
        ("airlines",),
        f"sqlite:///{demo_source}",
        f"postgresql+psycopg://kit:{password}@127.0.0.1:1/warehouse",
    )
    out = cli("run", "airlines", settings=settings)
    assert out.returncode == 1
    assert "Cannot connect to the warehouse postgresql+psycopg://kit:***@127.0.0.1:1/warehouse" in out.stderr
    assert password not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_password_from_the_environment_is_masked_too(cli, tmp_path, demo_source):
    settings = write_project(
        tmp_path, ("airlines",), f"sqlite:///{demo_source}", "postgresql+psycopg://kit:${KIT_PW}@127.0.0.1:1/wh"
    )
    out = cli("run", "airlines", settings=settings, env={"KIT_PW": "env-secret-9931"})
    assert out.returncode == 1 and "kit:***@127.0.0.1:1/wh" in out.stderr
    assert "env-secret-9931" not in out.stdout + out.stderr


def test_missing_driver_says_what_to_install(cli, tmp_path, demo_source):
    settings = write_project(
        tmp_path, ("airlines",), f"sqlite:///{demo_source}", "mysql+nosuchdriver://u:pw@127.0.0.1/db"
    )
    out = cli("run", "airlines", settings=settings)
    assert out.returncode == 1
    assert "No database driver for mysql+nosuchdriver" in out.stderr and "pw@" not in out.stderr


def test_missing_demo_source_says_how_to_build_it(cli, tmp_path):
    settings = write_project(tmp_path, ("airlines",), "sqlite:///data/source.db", "sqlite:///data/warehouse.db")
    out = cli("run", "--all", settings=settings)
    assert out.returncode == 1
    assert "does not exist. Build the demo source with `python -m my_package demo`" in out.stderr


def test_demo_builds_the_source_once(cli, tmp_path):
    settings = write_project(tmp_path, ("airlines",), "sqlite:///data/source.db", "sqlite:///data/warehouse.db")
    first = cli("demo", settings=settings)
    assert first.returncode == 0, first.stderr
    assert "flights: 336,776 rows" in first.stderr
    again = cli("demo", settings=settings)
    assert again.returncode == 0 and "already exists" in again.stderr


def test_check_lists_every_problem_at_once(cli, tmp_path, demo_source):
    settings = write_project(
        tmp_path,
        ("airlines", "planes"),
        f"sqlite:///{demo_source}",
        "postgresql+psycopg://kit:Hidden-9@127.0.0.1:1/wh",
        extra="[table:boats]\nsource_table = boats\nprimary_key = id\n"
        "[profile:other]\nsource = postgresql+psycopg://${KIT_UNSET_USER}@127.0.0.1:1/s\nwarehouse = sqlite:///w.db\n",
    )
    out = cli("check", settings=settings)
    assert out.returncode == 1
    text = " ".join(out.stderr.split())
    assert "Cannot connect to the warehouse postgresql+psycopg://kit:***@127.0.0.1:1/wh" in text
    assert "table boats: source table 'boats' does not exist" in text
    assert "KIT_UNSET_USER is not set" in text  # an unused profile's gap is a warning, listed all the same
    assert "2 problem(s) found" in text and "Hidden-9" not in out.stdout + out.stderr


def test_check_passes_on_a_sound_project(cli, tmp_path, demo_source):
    settings = write_project(tmp_path, ("airlines", "planes"), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    out = cli("check", settings=settings)
    assert out.returncode == 0, out.stderr
    assert "look right (2 tables)" in " ".join(out.stderr.split())


READ_COUNTER = """
import atexit, builtins, io, os

_settings, _reads, _open = os.path.realpath(os.environ["MY_PACKAGE_SETTINGS"]), [], io.open


def _counting_open(file, *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) == _settings:
        _reads.append(file)
    return _open(file, *args, **kwargs)


builtins.open = io.open = _counting_open  # every way Python opens a file: open(), io.open, Path.read_text
atexit.register(lambda: _open(os.environ["SETTINGS_READS"], "a").write(f"{len(_reads)}\\n"))
"""


def test_one_run_reads_settings_ini_once(cli, tmp_path, demo_source):
    settings = write_project(
        tmp_path / "project", ("airlines", "flights"), f"sqlite:///{demo_source}", "sqlite:///w.db"
    )
    hook, reads = tmp_path / "hook", tmp_path / "reads.txt"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(READ_COUNTER)  # loaded by every Python process the command starts
    out = cli(
        "run", "flights", "--no-reports", settings=settings, env={"PYTHONPATH": str(hook), "SETTINGS_READS": str(reads)}
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert reads.read_text().split() == ["1"], f"settings.ini was read {reads.read_text().split()} times (per process)"


PLANES_PER_MAKER = "SELECT manufacturer, count(*) AS planes FROM planes GROUP BY manufacturer"


def test_check_and_new_transform_read_a_sql_transforms_columns_on_duckdb(cli, tmp_path, demo_source, monkeypatch):
    settings = write_project(tmp_path, ("planes",), f"sqlite:///{demo_source}", "duckdb:///wh.duckdb")
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    assert load("planes") == 3322  # the input in the warehouse: the transform's SQL is compiled there
    added = cli(
        "new-transform", "per_maker", "--inputs", "planes", "--key", "manufacturer", "--sql", PLANES_PER_MAKER,
        settings=settings,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    checked = cli("check", settings=settings)
    assert checked.returncode == 0, checked.stderr
    assert "look right" in checked.stderr
    wrong = cli(
        "new-transform", "per_wing", "--inputs", "planes", "--key", "wings", "--sql", "SELECT wings FROM planes",
        settings=settings,
    )  # fmt: skip
    assert wrong.returncode == 1 and "The query does not compile" in wrong.stderr, wrong.stderr
    assert "Unexpected error" not in checked.stderr + added.stderr + wrong.stderr


def test_check_creates_no_warehouse_file_and_says_the_first_run_will(cli, tmp_path, demo_source):
    duckdb = f"[profile:duckdb]\nsource = sqlite:///{demo_source}\nwarehouse = duckdb:///data/warehouse.duckdb\n"
    settings = write_project(
        tmp_path, ("airlines", "flights"), f"sqlite:///{demo_source}", "sqlite:///data/warehouse.db",
        extra=duckdb + CARRIER_TRANSFORM,
    )  # fmt: skip
    created = lambda: sorted(p.name for p in tmp_path.rglob("warehouse*"))  # noqa: E731
    out = cli("check", settings=settings)
    assert out.returncode == 0, out.stderr
    said = " ".join(out.stderr.split())
    assert (
        "note: profile default: the warehouse data/warehouse.db does not exist yet; the first run creates it "
        "(python -m my_package run --all)." in said
    )
    assert (
        "note: profile duckdb: the warehouse data/warehouse.duckdb does not exist yet; the first run creates it "
        "(python -m my_package run --all --profile duckdb)." in said
    )
    assert "look right (2 tables, 1 transform)." in said
    assert created() == []
    # before the first run, a declared check is still checked (in an empty database of the warehouse's kind)
    settings.write_text(settings.read_text().replace("primary_key = carrier\n", "primary_key = carrier\nchecks =\n"
                                                     "    not_null(wingspan)\n    expression(name >>> 1 AND)\n", 1))  # fmt: skip
    for profile in ("default", "duckdb"):
        wrong = cli("check", "--profile", profile, settings=settings)
        assert wrong.returncode == 1, wrong.stderr
        said = " ".join(wrong.stderr.split())
        assert "table airlines: checks: `not_null(wingspan)`: 'wingspan' is not a column" in said, said
        assert "table airlines: checks: `expression(name >>> 1 AND)` does not compile" in said, said
        assert created() == []


def test_check_data_shows_a_raising_check_function_as_one_fail_row(cli, tmp_path, demo_source, monkeypatch):
    module = tmp_path / "kit_broken_checks.py"
    module.write_text("def no_seats(warehouse, table):\n    return 1 / 0\n")
    settings = write_project(tmp_path, ("airlines", "planes"), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    settings.write_text(
        settings.read_text().replace(
            "primary_key = tailnum\n",
            "primary_key = tailnum\nchecks =\n    function(kit_broken_checks:no_seats)\n    unique(tailnum)\n",
        )
    )
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    load("airlines")
    env = {"PYTHONPATH": str(tmp_path)}
    unloaded = cli(
        "check", "--data", settings=settings, env=env
    )  # planes is not in the warehouse yet: said, not an abort
    assert unloaded.returncode == 0, unloaded.stderr
    assert "not checked: planes is not in the warehouse yet" in " ".join(unloaded.stdout.split()), unloaded.stdout
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(QualityCheckError, match="the function raised ZeroDivisionError"):  # a load: it blocks
        load("planes")
    settings.write_text(settings.read_text().replace("function(kit_broken_checks", "warn function(kit_broken_checks"))
    load("planes")  # a warn check that cannot run publishes, and says why
    data = cli("check", "--data", "planes", settings=settings, env=env)
    shown = " ".join(data.stdout.split())
    assert data.returncode == 0, data.stderr
    assert "WARN" in shown and "the function raised ZeroDivisionError: division by zero" in shown, shown
    assert "unique(tailnum)" in shown and "PASS" in shown  # the table's other check, beside it
    settings.write_text(settings.read_text().replace("warn function(kit_broken_checks", "function(kit_broken_checks"))
    data = cli("check", "--data", "planes", settings=settings, env=env)
    shown = " ".join(data.stdout.split())
    assert data.returncode == 1 and "FAIL" in shown and "unique(tailnum)" in shown, shown + data.stderr
    assert "1 check(s) failed: planes: function(kit_broken_checks:no_seats)." in " ".join(data.stderr.split())
    assert "Traceback" not in data.stderr and "Unexpected error" not in data.stderr
