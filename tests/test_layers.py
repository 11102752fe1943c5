"""The floors check (tools/check_layers.py, run by `make lint`): the package passes it, and each kind of fault fails it.

Each fault is planted in a small package of its own, written as lazy imports (inside a function), the way a circle
or an arrow up is usually hidden.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import check_layers  # noqa: E402


def planted(tmp_path: Path, files: dict[str, str]) -> list[str]:
    "The problems check_layers finds in a package of `files` (dotted module name: source)."
    modules = {}
    for name, source in files.items():
        path = tmp_path / f"{name.replace('.', '_')}.py"
        path.write_text(source)
        modules[name] = path
    return check_layers.problems(check_layers.arrows(modules))


def test_the_package_has_no_arrow_up_no_circle_and_no_dev_under_a_worker():
    modules = {check_layers.module_name(p): p for p in (check_layers.ROOT / "my_package").rglob("*.py")}
    graph = check_layers.arrows(modules)
    assert check_layers.problems(graph) == []
    assert sum(map(len, graph.values())) > 100  # it read the package's imports, lazy ones among them


def test_settings_that_reach_up_into_the_engine_inside_a_function_are_an_arrow_up(tmp_path):
    found = planted(
        tmp_path,
        {
            "my_package.registry.settings": "def load():\n    from my_package.common.db import make_engine\n",
            "my_package.common.db": "def make_engine():\n    pass\n",
        },
    )
    assert found == [
        "my_package.registry.settings (floor 1) imports my_package.common.db (floor 2): an arrow up",
    ]


def test_a_circle_hidden_by_an_import_inside_a_function_is_found(tmp_path):
    found = planted(
        tmp_path,
        {
            "my_package.common.runs": "from my_package.common.sources import open_source\n",
            "my_package.common.sources": "def open_source():\n    from my_package.common import runs\n",
        },
    )
    assert found == ["a circle of 2 modules: my_package.common.runs, my_package.common.sources"]


def test_dev_imported_by_what_a_worker_runs_is_found_however_deep(tmp_path):
    found = planted(
        tmp_path,
        {
            "my_package.flows.factory": "from my_package.tasks.reports import render\n",
            "my_package.tasks.reports": "def render():\n    from my_package.dev import server\n",
            "my_package.dev.server": "",
        },
    )
    assert "my_package.tasks.reports (floor 4) imports my_package.dev.server (floor 6): an arrow up" in found
    assert "my_package.dev.server is imported by what a worker runs (from flows/): dev/ is for the project" in found
