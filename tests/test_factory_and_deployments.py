"""One flow per registered table, named ingest-<table>; prefect.yaml has exactly one deployment per table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import yaml
from conftest import ROOT, write_project
from prefect.flows import load_flow_from_entrypoint

from my_package.dev.deployments import render_prefect_yaml
from my_package.registry.settings import load_settings


def flows_bound_by(settings_path) -> dict[str, str]:
    "Import my_package.flows.ingestion in a fresh interpreter with `settings_path`: {attribute: flow name}."
    code = (
        "import json, my_package.flows.ingestion as m; from prefect import Flow; "
        "print(json.dumps({k: getattr(m, k).name for k in dir(m) if isinstance(getattr(m, k), Flow)}))"
    )
    env = {"MY_PACKAGE_SETTINGS": str(settings_path), "PATH": "/usr/bin:/bin", "HOME": str(settings_path.parent)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_one_flow_per_registered_table_with_the_right_name():
    flows = flows_bound_by(ROOT / "settings.ini")
    tables = list(load_settings(ROOT / "settings.ini").tables)
    expected = {f"ingest_{t}": f"ingest-{t}" for t in tables} | {"ingest_all": "ingest-all"}
    assert flows == expected


def test_a_new_registry_section_adds_a_flow_without_code(tmp_path):
    settings = write_project(tmp_path, ("airlines",), "sqlite:///s.db", "sqlite:///w.db")
    before = flows_bound_by(settings)
    settings.write_text(
        settings.read_text() + "\n[table:seattle_weather]\nsource_table = seattle\nprimary_key = date\n"
    )
    after = flows_bound_by(settings)
    assert set(after) - set(before) == {"ingest_seattle_weather"}
    assert after["ingest_seattle_weather"] == "ingest-seattle_weather"


def test_committed_prefect_yaml_is_what_the_registry_generates():
    assert (ROOT / "prefect.yaml").read_text() == render_prefect_yaml(load_settings(ROOT / "settings.ini"))


def test_every_table_has_exactly_one_deployment_whose_entrypoint_loads_its_flow():
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = doc["deployments"]
    names = [d["name"] for d in deployments]
    registry = load_settings(ROOT / "settings.ini")
    tables, transforms = registry.tables, registry.transforms
    for table in tables:
        assert names.count(f"ingest-{table}") == 1, f"{table} must have exactly one deployment"
    assert len(deployments) == len(tables) + len(transforms) + 1 and "transform-carrier_monthly_delays" in names
    assert names[-1] == "ingest-all"  # and the one that starts them all
    for d in deployments:
        assert d["entrypoint"].startswith("my_package.flows."), "entrypoints point into the installed package"
        assert load_flow_from_entrypoint(d["entrypoint"], use_placeholder_flow=False).name == d["name"]
        assert d["work_pool"]["name"] == "pipeline-pool"
    assert doc["pull"] == [], "no pull step: a default one would run flows in the source tree"


def test_deployments_check_fails_when_a_table_is_added_and_passes_after_write(cli, tmp_path):
    for name in ("settings.ini", "prefect.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    settings = tmp_path / "settings.ini"
    assert cli("deployments", "--check", settings=settings).returncode == 0
    settings.write_text(
        settings.read_text() + "\n[table:seattle_weather]\nsource_table = seattle\nprimary_key = date\n"
    )
    stale = cli("deployments", "--check", settings=settings)
    assert stale.returncode == 1
    assert "missing: ingest-seattle_weather" in stale.stderr and "deployments --write" in stale.stderr
    assert cli("deployments", "--write", settings=settings).returncode == 0
    assert cli("deployments", "--check", settings=settings).returncode == 0
    assert "my_package.flows.ingestion:ingest_seattle_weather" in (tmp_path / "prefect.yaml").read_text()
