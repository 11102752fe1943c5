"""Table reports: the parameters tag, parameter and table checks, a failing notebook, concurrent rendering."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import ROOT, write_project

from my_package.common.runs import resolve_run
from my_package.errors import ReportError, UnknownTableError
from my_package.registry.settings import load_settings
from my_package.reporting.render import check_report_parameters

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
