"""Count the places that test which kind of source or which database they have, outside the two seams.

A new kind of source or warehouse should be one module behind one seam, not a branch in every file: what a
database does differently is its class's (`my_package/common/warehouses/`), what a kind of source answers is its
module's (`my_package/common/sources/`), and everything else asks them. This script finds every test of a kind
by its spelling, read from the syntax tree (comments, and names shown in a message's f-string, do not count):

    x.dialect.name   x.dialect.driver   x.drivername   x.get_backend_name()
    the string "sqlite", "postgresql", "postgres" or "duckdb" tested against (compared, a key, a case, a prefix;
    in a list of module names it tests nothing)
    sqlite_file(...)   database_file(...)   duckdb_file(...)   is_folder(...)   and the old pairings'
    same_sqlite_files(...)   same_postgres(...)   adbc_supported(...)   duckdb_can_scan(...)
    isinstance(x, Engine)   isinstance(x, FolderSource)   and the other classes of a kind

It lists each place outside the seams and exits 1 when one is not allowed: `ALLOWED` names the modules other
work owns that still test a kind, each with how many places it may keep until it goes through the seams (fewer is
fine, and said; more, or a module not listed, fails).

    python tools/count_kind_tests.py          # the places outside the seams, and the verdict
    python tools/count_kind_tests.py --all    # also the places inside them

`make lint` runs it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "my_package"
SEAMS = ("my_package/common/warehouses/", "my_package/common/sources/")
KIND_NAMES = {"sqlite", "postgresql", "postgres", "duckdb"}
KIND_CALLS = {
    "get_backend_name",
    "sqlite_file",
    "database_file",
    "duckdb_file",
    "is_folder",
    "same_sqlite_files",
    "same_postgres",
    "adbc_supported",
    "duckdb_can_scan",
}
KIND_CLASSES = {
    "Engine",
    "FolderSource",
    "DatabaseSource",
    "SQLiteWarehouse",
    "PostgreSQLWarehouse",
    "DuckDBWarehouse",
}
# a place that may stay outside the seams, and why: none today (a new place fails `make lint`)
ALLOWED: dict[str, int] = {}


def final_name(node: ast.AST) -> str | None:
    "The last name of a name or an attribute (`sa.Engine` -> `Engine`)."
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def tested_strings(tree: ast.AST) -> set[int]:
    "The ids of the string constants that `tree` tests a value against: compared, a key, a case, a prefix asked."
    found: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            found += [node.left, *node.comparators]
        elif isinstance(node, ast.Dict):
            found += [k for k in node.keys if k is not None]
        elif isinstance(node, ast.Subscript):
            found.append(node.slice)
        elif isinstance(node, ast.MatchValue):
            found.append(node.value)
        elif isinstance(node, ast.Call) and final_name(node.func) in ("startswith", "endswith", "get"):
            found += node.args[:1]
    # a collection tested (`x in ("sqlite", "duckdb")`) tests each of its strings
    found += [e for n in found if isinstance(n, (ast.Tuple, ast.List, ast.Set)) for e in n.elts]
    return {id(n) for n in found}


def spelling(node: ast.AST, tested: set[int]) -> str | None:
    "How `node` tests a kind (`tested`: the ids of the strings tested against), or None when it does not."
    if isinstance(node, ast.Attribute):
        if node.attr in ("name", "driver") and isinstance(node.value, ast.Attribute) and node.value.attr == "dialect":
            return f".dialect.{node.attr}"
        if node.attr == "drivername":
            return ".drivername"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in KIND_NAMES:
        return repr(node.value) if id(node) in tested else None
    if isinstance(node, ast.Call):
        name = final_name(node.func)
        if name in KIND_CALLS:
            return f"{name}()"
        if name == "isinstance" and len(node.args) == 2:
            kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            found = [final_name(k) for k in kinds if final_name(k) in KIND_CLASSES]
            if found:
                return f"isinstance(..., {found[0]})"
    return None


def places(path: Path) -> list[tuple[int, str, str]]:
    "Each line of `path` that tests a kind: its number, the spellings found on it, and the line itself."
    text = path.read_text()
    tree = ast.parse(text, str(path))
    # a kind's name shown in a message (an f-string) is no test of it
    shown = {id(n) for s in ast.walk(tree) if isinstance(s, ast.JoinedStr) for n in ast.walk(s)}
    lines, found, tested = text.splitlines(), {}, tested_strings(tree)
    for node in ast.walk(tree):
        if id(node) in shown:
            continue
        how = spelling(node, tested)
        if how is not None:
            found.setdefault(node.lineno, []).append(how)
    return [(n, ", ".join(sorted(set(found[n]))), lines[n - 1].strip()) for n in sorted(found)]


def main(argv: list[str] | None = None) -> int:
    "Print the places outside the seams (with --all, inside too) and the verdict; exit 1 on one not allowed."
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also list the places inside the seams")
    args = parser.parse_args(argv)
    inside = outside = 0
    failed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        if path.name == "_modidx.py":
            continue
        found = places(path)
        if not found:
            continue
        seam = where.startswith(SEAMS)
        inside, outside = (inside + len(found), outside) if seam else (inside, outside + len(found))
        if seam and not args.all:
            continue
        allowed = ALLOWED.get(where, 0)
        verdict = "seam" if seam else "ok" if len(found) <= allowed else "FAIL"
        print(f"{where}: {len(found)}" + ("" if seam else f" (allowed {allowed})") + f" {verdict}")
        for number, how, line in found:
            print(f"    {number:>4}  {how:<28} {line[:72]}")
        if verdict == "FAIL":
            failed.append(where)
        elif not seam and len(found) < allowed:
            print(f"    fewer than allowed: lower its allowance in {Path(__file__).name} to {len(found)}")
    print(f"{outside} places test a kind outside the seams, {inside} inside them ({', '.join(SEAMS)}).")
    if failed:
        print(
            f"FAIL: {', '.join(failed)} test which kind of source or database they have: ask the seams instead "
            "(warehouse_for(engine).<method>, the source's own methods)."
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
