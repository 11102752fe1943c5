"""Every notebook's examples and hidden tests (`nbdev_test`), run inside the test run, against its shared Prefect
server: `make test` pays for no Prefect server of their own, and they run beside the other tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

BIN = Path(sys.executable).parent


def first_failure(stderr: str, limit: int = 7000) -> str:
    """The first notebook's traceback and the list of failed notebooks: nbdev_test reuses its worker processes, so a
    notebook that fails half-way can leave its os.environ to the next ones, whose failures would hide the cause."""
    failed = stderr.rfind("nbdev Tests Failed")
    return stderr[: min(limit, failed if failed >= 0 else limit)] + "\n[...]\n" + stderr[failed:]


def test_every_notebook_passes_nbdev_test(prefect_server, prefect_home):
    env = {**os.environ, "PREFECT_API_URL": prefect_server["api"], "PREFECT_HOME": str(prefect_home)}
    env.pop("MY_PACKAGE_SETTINGS", None)  # the notebooks read the project's own settings.ini
    out = subprocess.run([str(BIN / "nbdev_test")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, first_failure(out.stderr)
    assert "Success." in out.stdout + out.stderr
