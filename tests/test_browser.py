"""JupyterLab in a real browser: open the table notebook, run all cells, find outputs and no error, screenshot.

Debian's chromium (installed by `make test`) driven by Playwright's Python package, against `jupyter lab` on
127.0.0.1 with a token; the notebook runs against a throwaway project whose warehouse holds the demo tables.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, load, write_project
from pg_cluster import free_port
from prefect_stack import stop

from my_package.dev.demo import DEMO_TABLES

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def lab(tmp_path, demo_source, monkeypatch):
    "JupyterLab on 127.0.0.1 serving a copy of the table notebook, its kernel pointed at a loaded warehouse."
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium).")
    settings = write_project(tmp_path, DEMO_TABLES, f"sqlite:///{demo_source}", "sqlite:///warehouse.db")
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    for table in ("airlines", "flights"):
        load(table)
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(ROOT / "nbs" / "tables" / "table_report.ipynb", root / "table_report.ipynb")
    # render every cell (JupyterLab otherwise leaves cells outside the window unrendered), and no news pop-up
    user_settings = tmp_path / "lab-settings" / "@jupyterlab"
    (user_settings / "notebook-extension").mkdir(parents=True)
    (user_settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (user_settings / "apputils-extension").mkdir(parents=True)
    (user_settings / "apputils-extension" / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "MY_PACKAGE_SETTINGS": str(settings),
        "HOME": str(tmp_path),
        "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter"),
            "lab",
            "--no-browser",
            "--ip",
            "127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.open_browser=False",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        env=env,
        stdout=open(tmp_path / "lab.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=3)
            break
        except OSError:
            time.sleep(0.5)
    else:
        stop(server)
        pytest.fail((tmp_path / "lab.log").read_text()[-3000:])
    yield {"url": url, "token": token}
    stop(server)


def test_the_table_notebook_runs_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    shot = ROOT / "reports" / "jupyterlab_table_report.png"
    shot.parent.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab['url']}/lab/tree/table_report.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
            for _attempt in range(4):  # JupyterLab may drop a run requested while its kernel session is still settling
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
                page.wait_for_timeout(1_000)
                # the toolbar's "Restart the kernel and run all cells": runs them once the (new) kernel is ready
                page.click(".jp-NotebookPanel-toolbar [data-command='notebook:restart-run-all']")
                page.click(".jp-Dialog-button.jp-mod-accept", timeout=30_000)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not any(
                    t.strip() not in ("[ ]:", "") for t in prompts.all_inner_texts()
                ):
                    time.sleep(0.5)
                if any(t.strip() not in ("[ ]:", "") for t in prompts.all_inner_texts()):
                    break
            code_cells = page.locator(".jp-Notebook .jp-CodeCell").count()
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()
                if len(prompts) == code_cells and all(p.strip() not in ("[ ]:", "[*]:", "") for p in prompts):
                    break
                time.sleep(0.5)
            else:
                page.screenshot(path=str(shot.with_name("jupyterlab_failed.png")), full_page=True)
                raise AssertionError(f"the cells did not all run: {prompts}")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
            page.screenshot(path=str(shot), full_page=True)
            outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
            images = page.locator(".jp-Notebook .jp-OutputArea-output img")
            errors = page.locator(".jp-Notebook .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
            assert outputs.count() >= 8, f"only {outputs.count()} outputs"
            assert images.count() >= 2, "no plots in the notebook"
            assert not tracebacks, tracebacks
            assert "336,776 rows" in page.locator(".jp-Notebook").inner_text()
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
