"""What the scaffolding commands write passes the project's own checks as written: ruff, formatting, the sync check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import fresh_clone

VENV = Path(sys.executable).parent.parent


def make(project: Path, *targets: str) -> subprocess.CompletedProcess:
    "`make TARGETS` in `project` with the tests' environment as its .venv (never reinstalled: its markers are old)."
    marked = [f"-o{VENV / marker}" for marker in (".installed", ".dev-installed")]
    return subprocess.run(
        ["make", "--no-print-directory", *marked, f"VENV={VENV}", *targets],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_scaffold_passes_make_lint_and_make_sync_check_as_written(cli, tmp_path, demo_source):
    project = fresh_clone(tmp_path / "clone")
    (project / "data" / "exports").mkdir(parents=True)  # the demo's folder source (`python -m my_package demo`)
    shutil.copy(demo_source, project / "data" / "source.db")
    settings = project / "settings.ini"
    commands = [
        ("new-table", "eastern_airports", "--key", "faa", "--notebook",
         "--source", "SELECT * FROM airports WHERE tzone = 'America/New_York'"),
        ("new-transform", "daily_origin_delays", "--inputs", "flights,airports", "--key", "origin,year,month,day",
         "--notebook"),
        ("new-check", "planes", "no_seats"),
        ("new-check", "planes", "too_old"),  # a second check: a new function in the same notebook
        ("new-check", "carrier_monthly_delays", "no_carrier"),  # a transform's check
        ("new-check", "flights", "late_without_delay"),  # a key of several columns
    ]  # fmt: skip
    for command in commands:
        out = cli(*command, settings=settings)
        assert out.returncode == 0, (command, out.stdout + out.stderr)
    said = " ".join(out.stderr.split())
    assert "Registered function(my_package.checks.flights:late_without_delay) in [flights]'s checks." in said, said
    written = sorted(str(p.relative_to(project)) for p in (project / "nbs").rglob("*.ipynb") if "checks" in p.parts)
    assert written == ["nbs/checks/carrier_monthly_delays.ipynb", "nbs/checks/flights.ipynb", "nbs/checks/planes.ipynb"]
    transform_page = (project / "nbs" / "checks" / "carrier_monthly_delays.ipynb").read_text()
    assert "[transform:carrier_monthly_delays]" in transform_page and "[table:carrier" not in transform_page

    linted = make(project, "lint")  # as written, before the export
    assert linted.returncode == 0, linted.stdout + linted.stderr
    exported = subprocess.run([str(VENV / "bin" / "nbdev_export")], cwd=project, capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr  # the next step the commands name
    checked = make(project, "lint", "sync-check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Notebooks are clean and my_package/ is what they export." in checked.stdout
    for module in ("checks/planes.py", "checks/flights.py", "transforms/daily_origin_delays.py"):
        assert (project / "my_package" / module).exists(), module
    sound = cli("check", settings=settings)  # the registered functions import, and the project checks out
    assert sound.returncode == 0, sound.stderr
