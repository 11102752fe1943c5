"""What it shows is what happened: after every outcome of a run, the index (read in chromium) shows it within
seconds, and the table's report either shows that run or says at its top that it is older and what happened since."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import test_truth
from conftest import ROOT, wait_for, write_project
from test_browser import launch_chromium
from test_truth import kit, make_big_source, start_kit, stopped_in_its_copy

from my_package.reporting.lineage import COLOURS

SHOTS = ROOT / "reports" / "outcomes"  # screenshots at 1400 px, to look at (reports/ is not committed)
FAILED_RUN = ("failed", "crashed")
project_server = test_truth.project_server  # the fixture: a project whose own local server the test starts


def index_says(page, index: Path, table: str) -> dict:
    "What the index, opened in the browser, says of `table`: its last run's status and colour, its row, its box's fill."
    page.goto(index.as_uri())
    row = page.locator(f"[id='row-{table}']")
    badge = row.locator(".status").first
    fill = re.search(
        r"fill: (#[0-9a-f]{6})", page.locator(f"#lineage [id='node-{table}'] path").first.get_attribute("style")
    )
    return {
        "status": badge.inner_text(),
        "class": badge.get_attribute("class"),
        "row": row.inner_text(),
        "box": fill[1],
    }


def index_within(page, index: Path, table: str, status: str, seconds: float = 10) -> dict:
    "What the index says of `table` once its last run reads `status`, or after `seconds` (then the test fails on it)."
    deadline = time.monotonic() + seconds
    while True:
        said = index_says(page, index, table)
        if said["status"] == status or time.monotonic() > deadline:
            return said
        time.sleep(0.2)


def report_says(page, report: Path) -> dict:
    "What the report page, opened in the browser, tells: the run it was rendered from, the latest run, its banner."
    page.goto(report.as_uri())
    return page.evaluate(
        """() => {
            const box = document.getElementById("kit-since"), runs = window.kitRuns.tables[box.dataset.table].runs;
            return {run: box.dataset.run, latest: runs[runs.length - 1], hidden: box.hidden, kind: box.className,
                    banner: box.innerText};
        }"""
    )


def assert_report_tells(page, report: Path, current: bool) -> dict:
    "The report shows the latest run (`current`: no banner), or its banner says it is older and lists that run."
    said = report_says(page, report)
    if current:
        assert said["run"] == said["latest"]["key"] and said["hidden"], said
    else:
        assert said["run"] != said["latest"]["key"] and not said["hidden"], said
        assert "This report is older than the last run" in said["banner"] and said["latest"]["words"] in said["banner"]
    return said


def shoot(page, name: str) -> None:
    "A full-page screenshot of what the browser shows, at 1400 px, into reports/outcomes/."
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "duckdb"])
def test_a_failed_run_reaches_the_index_and_the_report_at_once(cli, tmp_path, demo_source, kind, request):
    from playwright.sync_api import sync_playwright

    urls = {"sqlite": "sqlite:///wh.db", "duckdb": "duckdb:///wh.duckdb"}
    url = request.getfixturevalue("pg_databases")["warehouse"] if kind == "postgresql" else urls[kind]
    settings = write_project(tmp_path, ("planes",), f"sqlite:///{demo_source}", url)
    index, report = tmp_path / "reports" / "default" / "index.html", tmp_path / "reports" / "default" / "planes.html"
    first = cli("run", "planes", "--wait", settings=settings)
    assert first.returncode == 0, first.stdout + first.stderr
    written = index.stat().st_mtime_ns
    settings.write_text(settings.read_text() + "checks =\n    between(seats, 1, 10)\n")  # most planes have more
    failed = cli("run", "planes", "--wait", settings=settings)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert index.stat().st_mtime_ns != written, "the index was not written after the failed run"
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            said = index_says(page, index, "planes")
            assert (said["status"], said["class"], said["box"]) == ("failed", "status failed", COLOURS["failed"]), said
            assert "between(seats, 1, 10)" in said["row"] and "older than the last run, since: failed" in said["row"]
            told = assert_report_tells(page, report, current=False)
            assert told["kind"] == "failed" and "in check_staged_table: QualityCheckError" in told["banner"], told
            assert "A run that does not end ok leaves the table as it was." in told["banner"]
            shoot(page, f"failed_check_{kind}_report")

            settings.write_text(settings.read_text().replace("checks =\n    between(seats, 1, 10)\n", ""))
            written = index.stat().st_mtime_ns
            quiet = cli("run", "planes", "--no-reports", settings=settings)  # no report rendered: the index still
            assert quiet.returncode == 0, quiet.stdout + quiet.stderr
            assert index.stat().st_mtime_ns != written, "run --no-reports did not write the index"
            said = index_says(page, index, "planes")
            assert (said["status"], said["box"]) == ("ok", COLOURS["ok"]), said
            told = assert_report_tells(page, report, current=False)
            assert told["banner"].index("failed at") < told["banner"].index("ok at"), told  # oldest first
            assert "Render it again: python -m my_package report planes" in told["banner"]
        finally:
            browser.close()


def test_a_first_run_that_fails_speaks_of_no_previous_table(cli, tmp_path, demo_source):
    settings = write_project(tmp_path, ("planes",), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    settings.write_text(settings.read_text() + "checks =\n    between(seats, 1, 10)\n")
    first = cli("run", "planes", "--no-reports", settings=settings)
    said = first.stdout + first.stderr
    assert first.returncode == 1 and "Nothing was published: there is no previous table." in said, said
    assert "previous table was left in place" not in said, said
    settings.write_text(settings.read_text().replace("checks =\n    between(seats, 1, 10)\n", ""))
    assert cli("run", "planes", "--no-reports", settings=settings).returncode == 0
    settings.write_text(settings.read_text() + "checks =\n    between(seats, 1, 10)\n")
    again = cli("run", "planes", "--no-reports", settings=settings)
    assert again.returncode == 1 and "The previous table was left in place." in again.stderr, again.stderr


def test_every_outcome_shows_in_the_index_and_the_report_within_seconds(tmp_path, prefect_server):
    from playwright.sync_api import sync_playwright

    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    make_big_source(project / "source.db")
    source = sa.create_engine(f"sqlite:///{project / 'source.db'}")
    checks = "checks =\n    not_null(name)\n    warn between(price, 0, 100)\n"
    table = "[table:big]\nsource_table = big\nprimary_key = id\n"
    settings = "[pipeline]\n[profile:default]\nsource = sqlite:///source.db\nwarehouse = sqlite:///warehouse.db\n"
    (project / "settings.ini").write_text(settings + table)
    extra = {"PREFECT_API_URL": prefect_server["api"]}
    index, report = project / "reports" / "default" / "index.html", project / "reports" / "default" / "big.html"
    warehouse = project / "warehouse.db"

    def source_sql(statement: str) -> None:
        with source.begin() as conn:
            conn.exec_driver_sql(statement)

    def ran(*args: str, status: int) -> None:
        out = kit(*args, project=project, home=home, extra=extra)
        assert out.returncode == status, out.stdout + out.stderr

    with sync_playwright() as p:
        browser = launch_chromium(p)  # up before the runs: the 10 s are the index's, not chromium's start
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})

            def step(name: str, status: str, box: str, current: bool) -> dict:
                "After a command's exit: within 10 s the index shows `status`; the report is current, or says so."
                said = index_within(page, index, "big", status)
                shoot(page, f"{name}_index")
                assert (said["status"], said["box"]) == (status, COLOURS[box]), (name, said)
                told = assert_report_tells(page, report, current)
                shoot(page, f"{name}_report")
                if not current and told["latest"]["status"] in FAILED_RUN:
                    assert told["kind"] == "failed", (name, told)  # a failed run is never shown green
                return told

            ran("run", "big", "--wait", status=0)
            step("ok", "ok", "ok", current=True)

            (project / "settings.ini").write_text(settings + table + checks)  # most prices are above 100: a warning
            ran("run", "big", "--wait", status=0)
            warned = step("warn", "ok", "warn", current=True)  # its registry entry changed: rendered again
            assert index_says(page, index, "big")["class"] == "status warn"

            source_sql("UPDATE big SET name = NULL WHERE id = 1")  # not_null(name) fails: nothing is published
            ran("run", "big", "--wait", status=1)
            told = step("failed_check", "failed", "failed", current=False)
            assert "in check_staged_table: QualityCheckError" in told["banner"] and "not_null(name)" in told["banner"]
            source_sql("UPDATE big SET name = 'item 1' WHERE id = 1")

            source_sql("ALTER TABLE big RENAME TO big_away")  # the source table is gone: the extract fails
            ran("run", "big", "--wait", status=1)
            told = step("failed_extract", "failed", "failed", current=False)
            assert "failed at" in told["latest"]["words"] and "in extract_table" in told["latest"]["words"], told
            source_sql("ALTER TABLE big_away RENAME TO big")

            running = start_kit("run", "big", "--no-reports", project=project, home=home, extra=extra)
            with stopped_in_its_copy(running, warehouse, project / "source.db", "_staging_big"):
                os.killpg(running.pid, signal.SIGINT)  # one Ctrl-C
            out, err = running.communicate(timeout=120)
            assert running.returncode == 130, out + err
            told = step("cancelled", "cancelled", "never", current=False)
            assert "cancelled at" in told["banner"] and "the live table is unchanged" in told["banner"], told

            running = start_kit("run", "big", "--no-reports", project=project, home=home, extra=extra)
            with stopped_in_its_copy(running, warehouse, project / "source.db", "_staging_big"):
                os.killpg(running.pid, signal.SIGKILL)  # killed: nothing records how it ended
            running.communicate(timeout=120)
            ran("run", "big", "--wait", status=0)  # the next run finds it
            told = step("killed_then_found", "ok", "warn", current=False)
            assert "crashed at" in told["banner"] and "killed before it ended" in told["banner"], told
            assert told["run"] == warned["run"], "the same data as the warned run's report: not rendered again"
            assert "The data this page shows did not change in the last run" in told["banner"], told
        finally:
            browser.close()


def test_with_the_projects_server_up_the_index_follows_every_run_within_seconds(project_server, demo_source):
    # with the project's own server up, `run` hands the index to the process it starts for the reports (or to one
    # of its own, `report --index-only`, when there is no report to render): the command does not wait for it
    from playwright.sync_api import sync_playwright

    project, home, port = project_server["project"], project_server["home"], project_server["port"]
    write_project(project, ("planes",), f"sqlite:///{demo_source}", "sqlite:///warehouse.db")
    assert kit("server", "start", project=project, home=home, extra={"PREFECT_PORT": port}).returncode == 0
    index = project / "reports" / "default" / "index.html"
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            ran = kit("run", "planes", project=project, home=home)  # its report renders in the background
            assert ran.returncode == 0 and "render in the background" in ran.stderr, ran.stdout + ran.stderr
            assert wait_for(index.exists, timeout=10, every=0.1), "no index 10 s after the command's exit"
            said = index_within(page, index, "planes", "ok")
            assert said["status"] == "ok", said
            settings = project / "settings.ini"
            settings.write_text(settings.read_text() + "checks =\n    between(seats, 1, 10)\n")
            for args in (["run", "planes"], ["run", "planes", "--no-reports"]):  # nothing to render: the index alone
                written = index.stat().st_mtime_ns
                failed = kit(*args, project=project, home=home)
                assert failed.returncode == 1, failed.stdout + failed.stderr
                changed = wait_for(lambda w=written: index.stat().st_mtime_ns != w, timeout=10, every=0.1)
                assert changed, f"`{' '.join(args)}`: the index was not written within 10 s of the command's exit"
                said = index_within(page, index, "planes", "failed")
                assert said["status"] == "failed" and "between(seats, 1, 10)" in said["row"], said
                shoot(page, f"server_up_{'_'.join(args[1:])}_index")
        finally:
            browser.close()
