"""Count, per notebook and in total, the exported functions and classes that are followed by an example.

The notebooks follow fastcore's rhythm: each exported cell is followed by a short example or test. A function
(or class) counts as followed by an example when a code cell that is not exported, among those after its own
cell and before the next exported cell, uses its name. Private names (`_x`) and methods do not count.

    python tools/count_examples.py              # the table, then the total; exit 1 below --minimum (85%)
    python tools/count_examples.py --missing    # also list each function without an example

`make lint` runs it.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def exported(source: str) -> bool:
    "True for a cell nbdev exports (`#| export` or `#| exporti`)."
    return bool(re.search(r"(?m)^#\|\s*export", source))


def command_name(node: ast.AST) -> str | None:
    "The command-line name of a function decorated `@app.command(...)` (a Typer command), else None."
    for decorator in getattr(node, "decorator_list", []):
        if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", None) == "command":
            named = [a.value for a in decorator.args if isinstance(a, ast.Constant)]
            return named[0] if named else node.name.replace("_", "-")
    return None


def definitions(source: str) -> list[tuple[str, str]]:
    "The public functions and classes a cell defines at its top level: (name, what an example calls it by)."
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [
        (node.name, command_name(node) or node.name)
        for node in tree.body
        if isinstance(node, kinds) and not node.name.startswith("_")
    ]


def examined(notebook: Path) -> list[tuple[str, bool]]:
    "Each exported function or class of `notebook`, and whether an example follows it."
    cells = ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
    found = []
    for i, source in enumerate(cells):
        if not exported(source):
            continue
        following = []
        for later in cells[i + 1 :]:
            if exported(later):
                break
            following.append(later)
        for name, called in definitions(source):
            # a command is exemplified through Typer's test runner: runner.invoke(app, ["new-table", ...])
            pattern = rf"\b{re.escape(name)}\b" if called == name else rf"[\"']{re.escape(called)}[\"']"
            found.append((name, any(re.search(pattern, example) for example in following)))
    return found


def main() -> int:
    "Print the table (and, with --missing, what lacks an example); exit 1 when the total is below --minimum."
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minimum", type=float, default=85.0, help="the lowest share (percent) that passes")
    parser.add_argument("--missing", action="store_true", help="list the functions with no example")
    args = parser.parse_args()
    total = with_example = 0
    print(f"{'notebook':<40} {'exported':>8} {'example':>8}")
    for notebook in sorted((ROOT / "nbs").glob("[0-9]*.ipynb")):
        found = examined(notebook)
        if not found:
            continue
        ok = sum(used for _, used in found)
        total, with_example = total + len(found), with_example + ok
        print(f"{notebook.name:<40} {len(found):>8} {ok:>8}")
        if args.missing:
            for name, used in found:
                if not used:
                    print(f"    no example: {name}")
    share = 100 * with_example / total if total else 100.0
    print(f"{'total':<40} {total:>8} {with_example:>8}  ({share:.0f}% followed by an example)")
    if share < args.minimum:
        print(f"FAIL: {share:.0f}% of the exported functions are followed by an example; at least {args.minimum:.0f}%.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
