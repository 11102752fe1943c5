"""The README's commands work in the order a newcomer meets them, on a fresh clone: its ```bash blocks, run."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from conftest import ROOT, fresh_clone

from my_package.dev.demo import DEMO_TABLES
from my_package.dev.server import free_port

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>\S*)\s*$")
SKIP = re.compile(r"^\s*<!-- readme-test: skip \((?P<why>.+)\) -->\s*$")
MARKERS = (".installed", ".dev-installed")  # the Makefile's: .venv is installed, and with the dev extras
TIMEOUT = 1200  # seconds for the whole README; it takes about 4 minutes on an idle two-core machine


def readme_blocks(text: str) -> list[tuple[int, str, str, str | None]]:
    "Every fenced block of a markdown `text`: (line of its opening fence, language, body, why it is skipped or None)."
    lines, blocks, i = text.splitlines(), [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, start = len(opening["indent"]), i
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        assert i < len(lines), f"README.md line {start + 1}: a ``` block that never closes"
        body = "\n".join(line[indent:] for line in lines[start + 1 : i])
        skipped = SKIP.match(lines[start - 1]) if start else None
        blocks.append((start + 1, opening["lang"], body, skipped["why"] if skipped else None))
        i += 1
    return blocks


def readme_script(text: str) -> str:
    "The README's ```bash blocks not marked `<!-- readme-test: skip (why) -->`, in order, as one bash script."
    markers = [n for n, line in enumerate(text.splitlines(), 1) if "readme-test:" in line]
    blocks = readme_blocks(text)
    marked = {line - 1 for line, lang, _, why in blocks if why and lang == "bash"}
    assert set(markers) == marked, (
        f"README.md lines {sorted(set(markers) - marked)}: a readme-test marker must read "
        "`<!-- readme-test: skip (why) -->` on the line just before a ```bash block"
    )
    parts = [
        "set -euo pipefail",
        'PROJECT="$PWD"',  # no Prefect server of the README's outlives the script, whatever happened
        "trap 'cd \"$PROJECT\" && python -m my_package server stop || true' EXIT",
    ]
    for line, lang, body, why in blocks:
        if lang == "bash" and not why:
            parts += [f"echo '>>> README.md line {line}'", body]
    return "\n".join(parts) + "\n"


def installed_venv(project: Path) -> None:
    """`project/.venv`: this test's virtual environment, linked entry by entry, with make's install markers of its own.

    Markers newer than the copied pyproject.toml tell make that .venv is installed, so `make run` and `make export`
    never pip-install into the shared environment (an editable install from the copy would point it at the copy).
    Linking .venv as a whole would share the markers, and `-o .venv/.installed` cannot help: GNU make ignores -o in
    MAKEFLAGS.
    """
    venv = project / ".venv"
    venv.mkdir()
    for entry in Path(sys.prefix).iterdir():
        if entry.name not in MARKERS:
            (venv / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    for name in MARKERS:
        (venv / name).touch()


def newcomer_environment(project: Path) -> dict[str, str]:
    "The environment of a newcomer's terminal: no Prefect or kit settings, the project's venv first on PATH."
    dropped = ("PREFECT_", "MY_PACKAGE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    return {
        **env,
        "PATH": f"{project / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        # a safety net under installed_venv: a pip install that runs anyway fails, and changes nothing
        "PIP_DRY_RUN": "1",
        # the README's local server, on a port no developer's own server (4200) holds
        "PREFECT_PORT": str(free_port()),
        "COLUMNS": "120",
    }


DEPARTURES = [{"id": i, "origin": ["JFK", "LGA", "EWR"][i % 3], "gate": {"terminal": i % 8}} for i in range(1, 121)]
API_TOKEN = "readme-api-token-1f2e"


class DeparturesApi(BaseHTTPRequestHandler):
    "The README's web API: `DEPARTURES` under /v1/departures, `limit` a page (`page=1, 2, ...`), for `API_TOKEN` only."

    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if self.headers.get("Authorization") != f"Bearer {API_TOKEN}":
            status, body = 401, {"error": "unauthorized"}
        elif url.path != "/v1/departures":
            status, body = 404, {"error": "no such endpoint"}
        else:
            limit, page = int(query.get("limit", 50)), int(query.get("page", 1))
            status, body = 200, {"data": {"items": DEPARTURES[(page - 1) * limit : page * limit]}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self):
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def count(database: Path, sql: str) -> int:
    "The single number `sql` selects from a SQLite `database`."
    with sqlite3.connect(database) as conn:
        return conn.execute(sql).fetchone()[0]


def test_the_readme_commands_work_in_order_on_a_fresh_clone(tmp_path):
    assert sys.prefix != sys.base_prefix, "run the tests in the project's virtual environment (.venv)"
    project = fresh_clone(tmp_path / "clone")
    installed_venv(project)
    script = project.parent / "readme.sh"
    script.write_text(readme_script((project / "README.md").read_text()))
    env = newcomer_environment(project)
    api = ThreadingHTTPServer(("127.0.0.1", 0), DeparturesApi)  # "Tables from a web API" reads it
    threading.Thread(target=api.serve_forever, daemon=True).start()
    env |= {"FLIGHTS_API_URL": f"http://127.0.0.1:{api.server_address[1]}/v1", "FLIGHTS_API_TOKEN": API_TOKEN}

    process = subprocess.Popen(
        ["bash", str(script)],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate()
        output += f"\n(killed after {TIMEOUT} s)"
    finally:  # even when killed: stop the README's server (a no-op when the script's trap did)
        api.shutdown()
        api.server_close()
        left_running = (project / ".prefect" / "server.json").exists()
        subprocess.run(
            [str(project / ".venv" / "bin" / "python"), "-m", "my_package", "server", "stop"],
            cwd=project,
            env=env,
            capture_output=True,
            timeout=120,
        )
    assert process.returncode == 0, f"the README's commands failed ({script}):\n...{output[-6000:]}"
    assert "Installing the" not in output, "make ran pip install in the shared virtual environment"

    source, warehouse = project / "data" / "source.db", project / "data" / "warehouse.db"
    assert (project / "reports" / "default" / "index.html").exists()  # make run wrote every report
    assert count(warehouse, "SELECT count(*) FROM flights") == 336_776
    eastern = "SELECT count(*) FROM airports WHERE tzone = 'America/New_York'"
    assert count(warehouse, "SELECT count(*) FROM eastern_airports") == count(source, eastern) > 0  # Adding a table
    assert (project / "reports" / "default" / "eastern_airports.html").exists()
    late = "SELECT count(*) FROM flights WHERE arr_delay > 60"
    assert count(warehouse, "SELECT count(*) FROM late_flights") == count(source, late) > 0  # written by hand
    assert count(warehouse, "SELECT sum(late_flights) FROM late_by_carrier") == count(source, late)  # derived
    assert (project / "nbs" / "tables" / "jfk_weather.ipynb").exists()  # a table's own notebook
    assert count(warehouse, "SELECT count(DISTINCT id) FROM departures") == len(DEPARTURES)  # from a web API
    assert API_TOKEN not in (project / "settings.ini").read_text() and API_TOKEN not in output
    assert not left_running, "the script's trap did not stop the README's Prefect server"
    # the index after make run (and the README's own tables): every table and transform drawn with its status,
    # a click on flights opens its report (chromium; a screenshot is kept in reports/)
    from test_browser import assert_index_in_browser

    from my_package.registry.settings import load_settings

    environment = dict(os.environ)
    try:
        settings = load_settings(project / "settings.ini")
    finally:  # it read the project's .env into this process: the README's API_TOKEN must not reach the next tests
        os.environ.clear()
        os.environ.update(environment)
    page = (project / "reports" / "default" / "index.html").read_text()
    names = re.findall(r'<tr id="row-([^"]+)">', page)  # what the index lists (as of the README's last run)
    assert {*DEMO_TABLES, "carrier_monthly_delays", "eastern_airports", "late_by_carrier"} <= set(names), names
    sources = sorted({spec.source for spec in settings.tables.values() if spec.name in names})
    shot = ROOT / "reports" / "index_lineage.png"
    assert_index_in_browser(project / "reports" / "default" / "index.html", names, sources, shot, click="flights")
