"""Check that the kit's own files the docs name exist: in README.md, bench/README.md, docs/*.md and every notebook.

A file is named as a path (`nbs/16_common.loads.ipynb`, `my_package/common/loads.py`, a folder such as
`my_package/commands/`), as a notebook's short name (`16_common.loads`), as a module or one of its names
(`my_package.common.loads`, `my_package.common.loads.publish`, `my_package.flows.ingestion:ingest_flights`), or
as the target of a markdown link (resolved from the file that holds it). A pattern (`nbs/5x_dev.*`,
`my_package/transforms/<name>.py`) must match at least one file. The places where the kit's commands write the
user's own notebooks and modules (`nbs/tables/`, `nbs/transforms/`, `nbs/checks/` and their modules) are named
by example (`nbs/checks/planes.ipynb`, `my_package.checks.flights`): names in them are not checked.

    python tools/check_doc_paths.py            # what is missing, one line each; exit 1 when anything is
    python tools/check_doc_paths.py --root DIR # another copy of the project

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
USERS = ("nbs/tables/", "nbs/transforms/", "nbs/checks/", "my_package/transforms/", "my_package/checks/")
PATH = r"(?:nbs|my_package)/[\w./<>*-]*"
SHORT = r"\d\d[a-z]?_[a-z]\w*(?:\.[a-z]\w*)+(?:\.ipynb)?"
MODULE = r"my_package(?:\.\w+)+"
NAMED = re.compile(rf"(?<![\w/.<-])({PATH}|{SHORT}|{MODULE})")
LINK = re.compile(r"\]\(([^)\s#]+\.(?:ipynb|py|md))\)")
PLACEHOLDER = re.compile(r"<[^>]*>|\b[A-Z]{3,}\b|(?<=\d)x(?=_)")


def documents(root: Path) -> list[tuple[Path, str]]:
    "The README, the reference and benchmark pages, and each notebook's markdown, with the file each comes from."
    pages = [root / "README.md", root / "bench" / "README.md", *sorted((root / "docs").glob("*.md"))]
    found = [(page, page.read_text()) for page in pages if page.exists()]
    for notebook in sorted((root / "nbs").rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in notebook.parts:
            cells = json.loads(notebook.read_text())["cells"]
            markdown = [c["source"] for c in cells if c["cell_type"] == "markdown"]
            found.append((notebook, "\n".join(s if isinstance(s, str) else "".join(s) for s in markdown)))
    return found


def defines(module: Path, name: str) -> bool:
    "True when the module's file defines or imports `name` at its top level (or lists it in `__all__`)."
    tree = ast.parse(module.read_text())
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(name in {n.id for n in ast.walk(t) if isinstance(n, ast.Name)} for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and name in {(a.asname or a.name) for a in node.names}:
            return True
    return False


def module_exists(root: Path, dotted: str) -> bool:
    "True when `my_package.a.b` is a module or package of the kit, or a name one of them defines."
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:cut])
        module = base.with_suffix(".py") if not base.is_dir() else base / "__init__.py"
        if module.is_file():
            rest = parts[cut:]
            return not rest or (len(rest) == 1 and defines(module, rest[0]))
    return False


def exists(root: Path, named: str, here: Path) -> bool:
    "True when what `named` (as the docs write it, in the file `here`) names is there."
    if named.startswith("my_package."):
        return module_exists(root, named.partition(":")[0])
    if re.fullmatch(SHORT, named):
        return (root / "nbs" / f"{named.removesuffix('.ipynb')}.ipynb").is_file()
    path = named if named.startswith(("nbs/", "my_package/")) else str((here.parent / named).relative_to(root))
    pattern = PLACEHOLDER.sub("*", path.rstrip("."))
    return any(root.glob(pattern)) if pattern != path.rstrip(".") else (root / path.rstrip(".")).exists()


def users_own(root: Path, named: str, here: Path) -> bool:
    "True when `named` is in a place where the kit's commands write the user's own files."
    if named.startswith("my_package."):
        return named.startswith(("my_package.checks.", "my_package.transforms."))
    if not named.startswith(("nbs/", "my_package/")):
        try:
            named = str((here.parent / named).resolve().relative_to(root))
        except ValueError:
            return False
    return named.startswith(USERS)


def missing(root: Path) -> list[str]:
    "Each name of a file of the kit that the docs use and that is not there, as `where: name`."
    found = []
    for document, text in documents(root):
        names = set(NAMED.findall(text)) | {t for t in LINK.findall(text) if "://" not in t}
        for named in sorted(names):
            if not users_own(root, named, document) and not exists(root, named, document):
                found.append(f"{document.relative_to(root)}: {named} does not exist: fix the name, or the text")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the project's directory (default: this one)")
    root = parser.parse_args().root.resolve()
    found = missing(root)
    for line in found:
        print(line)
    print(f"{len(documents(root))} documents: {len(found)} name(s) of missing files.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
