"""The pipeline drawn: lineage in the index and the terminal, history per run, freshness against each schedule."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from conftest import write_project

from my_package.common.db import make_engine
from my_package.dev.demo import write_large_registry
from my_package.registry.settings import load_settings, parse_settings
from my_package.reporting.index import write_index


def test_the_index_draws_every_table_and_transform_of_a_large_registry(tmp_path):
    settings = load_settings(write_large_registry(tmp_path))
    page = write_index(settings, make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}"), "default").read_text()
    svg = page[page.index("<svg") : page.index("</svg>")]
    names = [*settings.tables, *settings.transforms, "source", "sales"]
    missing = [n for n in names if f'id="node-{n}"' not in svg]
    assert not missing, f"no node for {missing}"
    for name in [*settings.tables, *settings.transforms]:
        assert f'<tr id="row-{name}">' in page
        assert f"{name}</text>" in svg  # the words stay text in the SVG: searchable, read aloud
    assert page.count(">never run</span>") == 60  # nothing ran yet
    assert page.count('class="status late"') == 50  # scheduled hourly and never loaded: late


def test_history_freshness_and_the_tree_after_real_runs(cli, tmp_path, demo_source):
    settings = write_project(tmp_path, ("airlines",), f"sqlite:///{demo_source}", "sqlite:///warehouse.db")
    text = settings.read_text().replace("primary_key = carrier\n", "primary_key = carrier\nschedule = 0 * * * *\n")
    settings.write_text(text)
    for _ in range(2):
        ran = cli("run", "airlines", "--no-reports", settings=settings)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    fresh = cli("check", "--fresh", settings=settings)
    assert fresh.returncode == 0 and "fresh airlines" in fresh.stderr, fresh.stdout + fresh.stderr

    # both runs finished more than two hourly intervals ago: airlines is late
    warehouse = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    with warehouse.begin() as conn:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
        conn.execute(sa.text("UPDATE _pipeline_runs SET finished_at = :old"), {"old": old.replace(tzinfo=None)})
    late = cli("check", "--fresh", settings=settings)
    assert late.returncode == 1, late.stdout + late.stderr
    assert "LATE airlines: last good run 3 h ago" in late.stderr and "1 table(s) late" in late.stderr
    listed = cli("tables", "--wide", settings=settings)
    assert "LATE" in listed.stdout
    page = write_index(load_settings(settings), warehouse, "default").read_text()
    assert 'class="status late"' in page

    # a fresh run: fresh again; the history has its three runs
    assert cli("run", "airlines", settings=settings).returncode == 0
    assert cli("check", "--fresh", settings=settings).returncode == 0
    page = (tmp_path / "reports" / "default" / "index.html").read_text()
    row = page[page.index('<tr id="row-airlines">') :]
    sparks = re.findall(r'class="spark" title="([^"]*)">([^<]*)<', row)
    assert sparks[0][0] == "rows after each run, oldest first: 16, 16, 16" and len(sparks[0][1]) == 3
    assert 'class="status late"' not in row[: row.index("</tr>")]
    report = (tmp_path / "reports" / "default" / "airlines.html").read_text()
    assert "History" in report and "after each of its last 3 runs" in report
    tree = cli("tables", "--graph", settings=settings)
    assert tree.returncode == 0 and "source source" in tree.stdout and "airlines · ok at" in tree.stdout


def test_a_source_box_says_what_the_source_is_never_its_url(tmp_path):
    secret = "kit-Lineage-pw"
    settings = parse_settings(
        f"[profile:default]\nsource = postgresql+psycopg://u:{secret}@127.0.0.1:1/db\nexports = exports\n"
        f"warehouse = sqlite:///{tmp_path / 'w.db'}\n"
        "[table:a]\nsource_table = a\nprimary_key = id\n[table:b]\nsource = exports\npath = b/*.csv\nprimary_key = id\n",
        tmp_path / "settings.ini",
    )
    page = write_index(settings, make_engine(f"sqlite:///{tmp_path / 'w.db'}"), "default").read_text()
    assert "postgresql database</text>" in page and "files</text>" in page
    assert secret not in page and "127.0.0.1" not in page
