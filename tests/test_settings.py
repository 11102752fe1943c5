"""settings.ini is parsed into typed objects; each mistake gets an error naming the section, key and fix."""

from __future__ import annotations

import pytest
from conftest import ROOT

from my_package.errors import SettingsError
from my_package.registry.settings import load_settings, parse_settings

GOOD = """
[pipeline]
profile = default
chunk_size = 1000

[profile:default]
source = sqlite:///data/source.db
warehouse = sqlite:///data/warehouse.db

[profile:pg]
source = postgresql+psycopg://kit:${KIT_PG_PASSWORD}@127.0.0.1:5432/source
warehouse = postgresql+psycopg://kit:${KIT_PG_PASSWORD}@127.0.0.1:5432/warehouse

[table:planes]
source_table = planes
primary_key = tailnum
schedule = 0 5 * * *

[table:late_flights]
query = SELECT * FROM flights WHERE arr_delay > 60
primary_key = year, month, day, carrier, flight
chunk_size = 500
"""


def test_the_project_settings_register_the_five_demo_tables():
    settings = load_settings(ROOT / "settings.ini")
    assert list(settings.tables) == ["airlines", "airports", "planes", "weather", "flights"]
    assert settings.table("flights").primary_key == (
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "carrier",
        "flight",
        "origin",
    )
    default = settings.profile("default")
    assert default.source == f"sqlite:///{ROOT / 'data' / 'source.db'}"
    assert default.warehouse == f"sqlite:///{ROOT / 'data' / 'warehouse.db'}"


def test_typed_values(tmp_path):
    settings = parse_settings(GOOD, tmp_path / "settings.ini")
    planes, late = settings.table("planes"), settings.table("late_flights")
    assert (planes.source_table, planes.query, planes.schedule) == ("planes", None, "0 5 * * *")
    assert late.query.startswith("SELECT") and late.primary_key == ("year", "month", "day", "carrier", "flight")
    assert (settings.chunk_size_for(planes), settings.chunk_size_for(late)) == (1000, 500)
    assert planes.flow_name == "ingest-planes"


def test_profile_urls_come_from_the_environment_and_dotenv(tmp_path, monkeypatch):
    monkeypatch.delenv("KIT_PG_PASSWORD", raising=False)
    (tmp_path / "settings.ini").write_text(GOOD)
    (tmp_path / ".env").write_text("KIT_PG_PASSWORD=from-dotenv\n")
    assert "kit:from-dotenv@" in load_settings(tmp_path / "settings.ini").profile("pg").source
    monkeypatch.setenv("KIT_PG_PASSWORD", "from-env")  # the environment wins over .env
    assert "kit:from-env@" in load_settings(tmp_path / "settings.ini").profile("pg").source


def test_profile_chosen_by_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_PG_PASSWORD", "x")
    monkeypatch.setenv("MY_PACKAGE_PROFILE", "pg")
    assert parse_settings(GOOD, tmp_path / "settings.ini").profile().name == "pg"


@pytest.mark.parametrize(
    "change, expected",
    [
        (("source_table = planes\n", ""), "[table:planes]: give exactly one of source_table"),
        (("primary_key = tailnum\n", ""), "[table:planes] primary_key: missing"),
        (
            ("schedule = 0 5 * * *", "schedule = every day"),
            "[table:planes] schedule: 'every day' is not a 5-field cron",
        ),
        (("chunk_size = 500", "chunk_size = lots"), "[table:late_flights] chunk_size: 'lots' must be a positive"),
        (("[table:planes]", "[table:Planes!]"), "table name 'Planes!' must be lower case"),
        (("[table:planes]", "[tables:planes]"), "unknown section [tables:planes]"),
        # a header missing its `]` is named at its own line (it used to read as a key of the section above)
        (("[table:planes]", "[table:planes"), "`[table:planes` is a section header without its closing `]`"),
        (("tailnum\n", "tailnum\njust some words\n"), "is not valid INI"),
        (("query = SELECT", "query = DROP TABLE flights; SELECT"), "[table:late_flights] query: must be a SELECT"),
        (("tailnum\n", "tailnum\ncolour = red\n"), "unknown key(s) colour"),
        (("chunk_size = 1000", "chunk_size = 0"), "[pipeline] chunk_size: '0' must be a positive"),
    ],
)
def test_malformed_settings_name_section_key_and_fix(tmp_path, change, expected):
    old, new = change
    assert old in GOOD
    with pytest.raises(SettingsError) as err:
        parse_settings(GOOD.replace(old, new, 1), tmp_path / "settings.ini")
    assert expected in str(err.value)


def test_profile_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("KIT_PG_PASSWORD", raising=False)
    settings = parse_settings(GOOD, tmp_path / "settings.ini")
    with pytest.raises(SettingsError, match=r"environment variable KIT_PG_PASSWORD is not set"):
        settings.profile("pg")
    with pytest.raises(SettingsError, match=r"Unknown profile 'prod'.*Profiles: default, pg"):
        settings.profile("prod")
    bad = parse_settings(GOOD.replace("warehouse = sqlite:///data/warehouse.db", "warehouse = data/warehouse.db"))
    with pytest.raises(SettingsError, match=r"\[profile:default\] warehouse: not a database URL"):
        bad.profile("default")


def test_unknown_table_lists_the_registered_ones(tmp_path):
    settings = parse_settings(GOOD, tmp_path / "settings.ini")
    with pytest.raises(SettingsError, match=r"Unknown table 'cars'. Registered tables: planes, late_flights"):
        settings.table("cars")


def test_missing_settings_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(tmp_path / "nope.ini"))
    with pytest.raises(SettingsError, match="MY_PACKAGE_SETTINGS points to .*nope.ini, which is not a file"):
        load_settings()
