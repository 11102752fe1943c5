"""The docs name only files of the kit that exist: tools/check_doc_paths.py, which `make lint` runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def check_doc_paths(root: Path) -> subprocess.CompletedProcess:
    "Run tools/check_doc_paths.py on the project at `root`."
    tool = ROOT / "tools" / "check_doc_paths.py"
    return subprocess.run([sys.executable, str(tool), "--root", str(root)], capture_output=True, text=True, timeout=60)


def test_the_readme_and_the_notebooks_name_only_files_that_exist():
    out = check_doc_paths(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_each_name_of_a_missing_file_is_one_line(tmp_path):
    for name in ("nbs", "my_package"):
        shutil.copytree(
            ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")
        )
    stale = (
        "Gone: `nbs/02_registry.entries.ipynb`, `03_registry.problems`, `my_package/registry/entries.py`,\n"
        "`my_package.common.datachecks`, `my_package.common.loads.no_such_name`, [a page](nbs/nowhere.ipynb),\n"
        "`nbs/6x_nothing.*`. There: `nbs/5x_dev.*`, `my_package.common.loads.publish`, `18_common.loads`,\n"
        "`my_package.flows.ingestion:ingest_flights`, `my_package/commands/`, [the tour](nbs/index.ipynb).\n"
        "A user's own, made by a command: `nbs/checks/planes.ipynb`, `my_package.checks.planes:no_seats`.\n"
    )
    (tmp_path / "README.md").write_text(stale)
    design = tmp_path / "nbs" / "design.ipynb"
    notebook = json.loads(design.read_text())
    notebook["cells"].append(
        {"cell_type": "markdown", "id": "stale1", "metadata": {}, "source": "See `07_common.loads`."}
    )
    design.write_text(json.dumps(notebook))
    out = check_doc_paths(tmp_path)
    assert out.returncode == 1
    named = {
        line.split(": ", 1)[1].removesuffix(" does not exist: fix the name, or the text")
        for line in out.stdout.splitlines()[:-1]
    }
    assert named == {
        "nbs/02_registry.entries.ipynb",
        "03_registry.problems",
        "my_package/registry/entries.py",
        "my_package.common.datachecks",
        "my_package.common.loads.no_such_name",
        "nbs/nowhere.ipynb",
        "nbs/6x_nothing.*",
        "07_common.loads",
    }, out.stdout
    assert "nbs/design.ipynb: 07_common.loads does not exist" in out.stdout
