"""The command line: help, usage errors, and clear one-line errors for bad input (passwords masked)."""

from __future__ import annotations

from conftest import load, write_project


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
