"""tools/count_kind_tests.py finds every spelling of a test of a source's kind or a database's dialect, and fails on
one outside the seams."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import count_kind_tests  # noqa: E402

PLANTED = textwrap.dedent(
    """
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    def branchy(engine, url, source):
        if engine.dialect.name == "postgresql":
            pass
        driver = engine.dialect.driver
        kind = url.get_backend_name()
        if url.drivername.startswith("duckdb"):
            pass
        path = sqlite_file(engine) or database_file(url)
        files = is_folder(url)
        if isinstance(source, (str, Engine)):
            pass
        if isinstance(source, FolderSource):
            pass
        insert = {"sqlite": 1}
        local = backend in ("sqlite", "duckdb")
        preloaded = ["psycopg", "duckdb"]  # module names, not tested against: no test
        raise ValueError(f"no driver for {url.drivername}")  # shown in a message: no test
    """
)


def test_every_spelling_is_found_and_a_message_is_not(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(PLANTED)
    found = {line: how for _, how, line in count_kind_tests.places(planted)}
    assert found == {
        'if engine.dialect.name == "postgresql":': "'postgresql', .dialect.name",
        "driver = engine.dialect.driver": ".dialect.driver",
        "kind = url.get_backend_name()": "get_backend_name()",
        'if url.drivername.startswith("duckdb"):': "'duckdb', .drivername",
        "path = sqlite_file(engine) or database_file(url)": "database_file(), sqlite_file()",
        "files = is_folder(url)": "is_folder()",
        "if isinstance(source, (str, Engine)):": "isinstance(..., Engine)",
        "if isinstance(source, FolderSource):": "isinstance(..., FolderSource)",
        'insert = {"sqlite": 1}': "'sqlite'",
        'local = backend in ("sqlite", "duckdb")': "'duckdb', 'sqlite'",
    }


def test_the_package_tests_no_kind_outside_the_seams_but_what_is_allowed():
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "count_kind_tests.py")], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stdout + out.stderr
    listed = [line.split(":")[0] for line in out.stdout.splitlines() if line.startswith("my_package/")]
    assert set(listed) <= set(count_kind_tests.ALLOWED), listed  # only modules other work owns
    assert not any(path.startswith("my_package/common/") for path in listed), listed  # the engine asks the seams
    assert "\n0 places test a kind outside the seams" in f"\n{out.stdout}", out.stdout  # none left anywhere


def test_a_kind_test_outside_the_seams_fails(tmp_path, monkeypatch):
    package = tmp_path / "my_package" / "common"
    package.mkdir(parents=True)
    (package / "loads.py").write_text(PLANTED)
    monkeypatch.setattr(count_kind_tests, "ROOT", tmp_path)
    monkeypatch.setattr(count_kind_tests, "PACKAGE", tmp_path / "my_package")
    assert count_kind_tests.main([]) == 1
    (package / "loads.py").write_text("def quiet(warehouse):\n    return warehouse.file\n")
    assert count_kind_tests.main([]) == 0
