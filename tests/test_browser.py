"""JupyterLab in a real browser: open the table notebook, run all cells, find outputs and no error, screenshot.

Debian's chromium (installed by `make test`) driven by Playwright's Python package, against `jupyter lab` on
127.0.0.1 with a token; the notebook runs against a throwaway project whose warehouse holds the demo tables.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, load, wait_for, write_project
from pg_cluster import free_port
from prefect_stack import stop

from my_package.dev.demo import DEMO_TABLES

CHROMIUM = Path("/usr/bin/chromium")


def launch_chromium(playwright):
    "Debian's chromium, headless, with nothing that reaches out to the network."
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium).")
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=[*args, "--disable-component-update", "--disable-sync"]
    )


LINEAGE_SIZES = """() => {
  const svg = document.querySelector("#lineage svg"), box = svg.getBoundingClientRect();
  const scale = box.width / svg.viewBox.baseVal.width;  // CSS px per unit of the drawing
  const sizes = [...svg.querySelectorAll("text")].map((t) => parseFloat(getComputedStyle(t).fontSize) * scale);
  return {right: box.right, page: document.documentElement.clientWidth, smallest: Math.min(...sizes)};
}"""


def assert_index_in_browser(
    index: Path, entries: list[str], sources: list[str], shot: Path, click: str | None = None
) -> None:
    "Open `index` in chromium: a box per entry (with its status) and source, none overlapping; `click`'s opens its report."
    from playwright.sync_api import sync_playwright

    shot.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(index.as_uri())
            page.wait_for_selector("#lineage svg")
            page.screenshot(path=str(shot), full_page=True)
            boxes, names = {}, [*entries, *sources]
            for name in names:
                node = page.locator(f"#lineage [id='node-{name}']")
                assert node.count() == 1, f"no box for {name} in the lineage"
                boxes[name] = node.bounding_box()
                assert boxes[name] and boxes[name]["width"] > 50, f"{name}'s box is not drawn: {boxes[name]}"
            overlapping = [
                (a, b)
                for i, a in enumerate(names)
                for b in names[i + 1 :]
                if boxes[a]["x"] < boxes[b]["x"] + boxes[b]["width"]
                and boxes[b]["x"] < boxes[a]["x"] + boxes[a]["width"]
                and boxes[a]["y"] < boxes[b]["y"] + boxes[b]["height"]
                and boxes[b]["y"] < boxes[a]["y"] + boxes[a]["height"]
            ]
            assert not overlapping, f"boxes overlap: {overlapping[:5]}"
            drawn = page.evaluate(LINEAGE_SIZES)
            assert drawn["right"] <= drawn["page"], f"the lineage is wider than the page: {drawn}"
            assert drawn["smallest"] >= 11, f"the lineage's words are {drawn['smallest']:.1f} px: too small to read"
            print(f"lineage: {drawn['right']:.0f} px of {drawn['page']} wide, words of {drawn['smallest']:.1f} px")
            words = page.locator("#lineage svg").text_content()
            assert all(n in words for n in names), f"not named in the drawing: {[n for n in names if n not in words]}"
            statuses = re.findall(r"rows · (ok|failed|never run)", words)  # each entry's box says its last run
            assert len(statuses) == len(entries), (len(statuses), len(entries))
            if click:
                with page.expect_navigation():
                    # the box's corner: its middle is its words, a link too
                    page.locator(f"#lineage [id='node-{click}']").click(position={"x": 6, "y": 6})
                assert page.url.endswith(f"/{click}.html"), page.url
                assert page.locator("img").count() > 0, f"{click}'s report has no plot"
        finally:
            browser.close()


def test_the_index_of_fifty_tables_and_ten_transforms_reads_in_a_browser(tmp_path):
    from my_package.common.db import make_engine
    from my_package.dev.demo import write_large_registry
    from my_package.registry.settings import load_settings
    from my_package.reporting.index import write_index

    settings = load_settings(write_large_registry(tmp_path))
    index = write_index(settings, make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}"), "default")
    entries = [*settings.tables, *settings.transforms]
    shot = tmp_path / "index_lineage_60.png"
    assert_index_in_browser(index, entries, ["source", "sales"], shot)
    print(f"screenshot: {shot}")


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


def kernel_idle(lab: dict) -> bool:
    "True when JupyterLab's server has a kernel and every kernel it has is idle (started, not running anything)."
    url = f"{lab['url']}/api/kernels?token={lab['token']}"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            kernels = json.loads(answer.read())
    except urllib.error.HTTPError as e:  # a 500 while a kernel starts (seen in a fresh-clone run): ask again
        if e.code < 500:
            raise
        return False
    return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)


def test_pointing_at_a_box_of_sixty_lights_up_what_feeds_it_and_what_it_feeds(tmp_path):
    import networkx as nx
    from playwright.sync_api import sync_playwright

    from my_package.common.db import make_engine
    from my_package.dev.demo import write_large_registry
    from my_package.registry.settings import load_settings
    from my_package.reporting.index import write_index
    from my_package.reporting.lineage import lineage_graph

    settings = load_settings(write_large_registry(tmp_path))
    index = write_index(settings, make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}"), "default")
    graph = lineage_graph(settings)
    names = {n: graph.nodes[n]["name"] for n in graph}
    pointed = next(n for n in graph if graph.in_degree(n) > 1 and graph.out_degree(n))  # inputs and outputs
    lit = {names[n] for n in {pointed} | nx.ancestors(graph, pointed) | nx.descendants(graph, pointed)}
    shot = tmp_path / "index_lineage_traced.png"
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(index.as_uri())
            drawing = page.locator("#lineage").bounding_box()
            assert drawing["height"] <= 1000, f"the lineage is taller than the window: {drawing}"
            page.locator(f"#lineage [id='node-{names[pointed]}']").hover(position={"x": 6, "y": 6})
            shown = page.evaluate(
                """() => [...document.querySelectorAll("#lineage [id^=node-]")].map((el) =>
                    [el.id.slice(5), el.classList.contains("lit"), parseFloat(getComputedStyle(el).opacity)])"""
            )
            page.screenshot(path=str(shot))
            assert {name for name, on, _ in shown if on} == lit, (names[pointed], sorted(lit))
            assert all(opacity < 0.5 for name, on, opacity in shown if not on), "the rest does not fade"
            assert len(lit) < len(shown), "every box is lit: nothing to tell apart"
            page.mouse.move(5, 5)  # away from the drawing: every box as it was
            assert page.locator("#lineage .lit").count() == 0
        finally:
            browser.close()
    print(f"{names[pointed]}: {len(lit)} of {len(shown)} boxes lit; screenshot: {shot}")


def test_the_table_notebook_runs_in_jupyterlab(lab):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    idle = ".jp-Notebook-ExecutionIndicator[data-status='idle']"
    shot = ROOT / "reports" / "jupyterlab_table_report.png"
    shot.parent.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab['url']}/lab/tree/table_report.ipynb?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            code_cells = page.locator(".jp-Notebook .jp-CodeCell").count()

            def prompts() -> list[str]:
                return [t.strip() for t in page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts()]

            def ran_all() -> bool:
                shown = prompts()
                if len(shown) == code_cells and all(t not in ("[ ]:", "[*]:", "") for t in shown):
                    return True
                # JupyterLab may leave prompts at [*] after their cells ran (seen with every cell's count saved in
                # the file): then every code cell that prints, all but the first, shows its output
                cells = page.locator(".jp-Notebook .jp-CodeCell")
                return all(cells.nth(i).locator(".jp-OutputArea-output").count() > 0 for i in range(1, code_cells))

            # JupyterLab may drop a run requested while its kernel session is still settling (no cell starts), or
            # lose it on the connection it replaces as the kernel restarts (the cells wait as [*] for ever; its log
            # then says "Replacing stale connection"): ask again, up to three times
            for attempt in range(3):
                # the kernel up and idle as its server sees it: a restart asked for while it still starts (the page
                # may show "idle" before that) breaks the page's connection to it for good
                assert wait_for(lambda: kernel_idle(lab), timeout=180, every=0.5), "the kernel never started"
                try:  # after a lost run the page may show the kernel busy for ever: the restart below ends that
                    page.wait_for_selector(idle, timeout=120_000 if attempt == 0 else 30_000)
                except PlaywrightTimeout:
                    if attempt == 0:
                        raise
                page.wait_for_timeout(1_000)
                # the toolbar's "Restart the kernel and run all cells": runs them once the (new) kernel is ready
                page.click(".jp-NotebookPanel-toolbar [data-command='notebook:restart-run-all']")
                page.click(".jp-Dialog-button.jp-mod-accept", timeout=30_000)
                started = wait_for(lambda: any(t not in ("[ ]:", "") for t in prompts()), timeout=30, every=0.5)
                if started and wait_for(ran_all, timeout=240, every=0.5):
                    break
            else:
                page.screenshot(path=str(shot.with_name("jupyterlab_failed.png")), full_page=True)
                raise AssertionError(f"the cells did not all run: {prompts()}")
            with contextlib.suppress(PlaywrightTimeout):  # the page may keep a missed reply's cell busy
                page.wait_for_selector(idle, timeout=60_000)
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


# ---- reports that read like a finished product ------------------------------------------------------------------

MICROSECONDS = re.compile(r"\d\d:\d\d:\d\d\.\d")
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth, wide = [];
  const scrolls = (el) => { for (let a = el.parentElement; a; a = a.parentElement) {
    if (["auto", "scroll", "hidden"].includes(getComputedStyle(a).overflowX) && a.getBoundingClientRect().right <= width + 1)
      return true; } return false; };
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width && box.right > width + 1 && !scrolls(el)) wide.push(el.tagName + "." + el.className + " " + box.right);
  }
  return {page: document.documentElement.scrollWidth, width: width, wide: wide.slice(0, 5)};
}"""


def assert_page_reads_well(page, url: str, shot: Path) -> str:
    "Open `url` at 1400 px: nothing wider than the page, no cell reading nan, None or microseconds; return its text."
    page.goto(url)
    page.wait_for_load_state("load")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    found = page.evaluate(OVERFLOWING)
    assert found["page"] <= found["width"] and not found["wide"], f"{shot.name}: wider than the page: {found}"
    cells = [t.strip() for t in page.locator("td, th").all_inner_texts()]
    assert cells, f"{shot.name}: no table"
    bad = [t for t in cells if t.lower() in ("nan", "none", "nat") or MICROSECONDS.search(t)]
    assert not bad, f"{shot.name}: cells read {bad[:5]}"
    return page.locator("body").inner_text()


def test_reports_read_like_a_finished_product_at_1400_px(tmp_path, demo_source, monkeypatch):
    from playwright.sync_api import sync_playwright

    from my_package.common.bookkeeping import record_run
    from my_package.common.runs import RunOutcome, resolve_run
    from my_package.reporting.index import write_index
    from my_package.reporting.render import render_report

    settings = write_project(tmp_path, DEMO_TABLES, f"sqlite:///{demo_source}", "sqlite:///warehouse.db")
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    for table in ("airlines", "weather", "flights"):
        rows = load(table)
        failing = {"check": "rows", "severity": "error", "status": "PASS", "failing": 0, "detail": "", "samples": []}
        record_run(resolve_run(table).warehouse, RunOutcome(table, rows_extracted=rows, rows=rows, seconds=1.25))
        record_run(
            resolve_run(table).warehouse,
            RunOutcome(table, rows_extracted=rows, rows=rows, seconds=0.5, results=[failing], checks=["PASS rows"]),
        )
    pages = {name: render_report(resolve_run(name)).html for name in ("weather", "flights")}
    write_index(load_settings_of(settings), resolve_run("flights").warehouse, "default")
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            # a reader in New York sees times in their zone, to the second, the exact UTC one on hover
            page = browser.new_context(
                viewport={"width": 1400, "height": 1000}, timezone_id="America/New_York"
            ).new_page()
            for name, html in pages.items():
                words = assert_page_reads_well(page, html.as_uri(), tmp_path / f"report_{name}.png")
                times = page.locator("td time")
                assert times.count() >= 2, f"{name}: no times in its tables"
                assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d EST", times.first.inner_text()), (
                    times.first.inner_text()
                )
                assert times.first.get_attribute("title").endswith(" UTC)")
                rows = f"{resolve_run(name).warehouse.connect().exec_driver_sql(f'SELECT count(*) FROM {name}').scalar():,}"
                assert rows in words, f"{name}: its {rows} rows are not written with separators"
                cells = [page.locator("td", has_text=t).first for t in ("ok", rows)]
                aligned = [c.evaluate("c => getComputedStyle(c).textAlign") for c in cells]
                assert aligned == ["left", "right"], f"{name}: text and numbers aligned {aligned}"
                if name == "weather":  # the generic report's profile: each column's distribution, by the warehouse
                    profile = page.locator("table", has=page.locator("th", has_text="distribution"))
                    shown = dict(zip(profile.locator("td:first-child").all_inner_texts(),
                                     profile.locator("td:last-child").all_inner_texts(), strict=True))  # fmt: skip
                    assert re.fullmatch(r"(JFK|LGA|EWR) \d+%(, (JFK|LGA|EWR) \d+%){2}", shown["origin"]), shown
                    assert re.fullmatch(r"[\u2007▁▂▃▄▅▆▇█]{8}", shown["temp"]) and shown["year"] == "one value", shown
                    assert re.fullmatch(r"2013-01-01 \d\d:00 to 2013-12-3\d \d\d:00", shown["time_hour"]), shown
                    assert "2,013" not in profile.inner_text(), "the year's min, mean and max read 2,013"
            # ages are computed when the page is read: three hours later, the loads were "3 h ago"
            page.clock.install(time=dt.datetime.now(dt.UTC) + dt.timedelta(hours=3, minutes=5))
            index = pages["flights"].with_name("index.html")
            words = assert_page_reads_well(page, index.as_uri(), tmp_path / "index.png")
            assert "336,776" in words
            ages = page.locator("#row-flights time[data-age]").all_inner_texts()
            assert ages and all(age == "3 h ago" for age in ages), ages
        finally:
            browser.close()


def load_settings_of(path: Path):
    "The settings at `path`."
    from my_package.registry.settings import load_settings

    return load_settings(path)
