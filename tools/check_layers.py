"""Check that the package's floors point one way, reading every import (those inside functions too).

The package is built in floors, each importing only from the floors below it (or its own):

    0  errors
    1  registry/      settings.ini -> typed objects, check kinds: needs no engine
    2  common/        the engine: sources, warehouses, transfer, loads, checks, run state (no Prefect)
    3  reporting/     papermill rendering, the index, lineage (no Prefect)
    4  tasks/  transforms/  checks/   thin @tasks; the data scientist's exported functions
    5  flows/         flow factories and orchestration
    6  commands/  terminal  dev/   what the commands do and print; the project's own tooling
    7  cli            the command line
    8  __main__  runner   the entry points: `python -m my_package`; the runner, whose children run the command line

`dev/` is for the project (scaffolding, the local server, the demo, prefect.yaml): no module a worker runs (the
flows and everything they import) may import it. Lazy imports (inside a function) are imports: an arrow that runs
up a floor, or closes a circle, is refused wherever it is written.

    python tools/check_layers.py           # the problems, one line each; exit 1 when there is any
    python tools/check_layers.py --graph   # also every arrow, module -> module

`make lint` runs it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "my_package"
FLOORS = {  # the first part of a module's name below the package (or the module itself): its floor
    "errors": 0,
    "registry": 1,
    "common": 2,
    "reporting": 3,
    "tasks": 4,
    "transforms": 4,
    "checks": 4,
    "flows": 5,
    "commands": 6,
    "terminal": 6,
    "dev": 6,
    "cli": 7,
    "__main__": 8,
    "runner": 8,  # the runner's serving side runs the command line in its children; its client is in dev/
}
WORKER_ROOTS = ("flows",)  # a worker imports the flows (deployments' entrypoints) and what they import


def module_name(path: Path) -> str:
    "The dotted name of the package's file `path` (`my_package/common/db.py` -> `my_package.common.db`)."
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.ImportFrom | ast.Import, here: str, is_package: bool) -> list[str]:
    "The package's modules an import statement names (relative imports resolved; `from x import name` may be a module)."
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = here if is_package else here.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
    return [target, *[f"{target}.{a.name}" for a in node.names]]


def arrows(modules: dict[str, Path]) -> dict[str, set[str]]:
    "Each module's imports of the package's modules, wherever in the file they are written."
    found = {}
    for name, path in modules.items():
        tree, targets = ast.parse(path.read_text(), str(path)), set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                # `if TYPE_CHECKING:` imports count too: an annotation that names an upper floor is an arrow up
                for target in imported(node, name, path.name == "__init__.py"):
                    if target in modules and target != name:
                        targets.add(target)
        found[name] = targets
    return found


def floor(module: str) -> int | None:
    "The floor of a module (None for the package itself and generated files such as `_modidx`)."
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    "Every strongly connected group of more than one module (Tarjan's algorithm), each as a sorted list."
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def reachable(graph: dict[str, set[str]], roots: list[str]) -> set[str]:
    "The modules `roots` import, directly or not, the roots among them."
    seen, todo = set(), list(roots)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += graph.get(node, ())
    return seen


def problems(graph: dict[str, set[str]]) -> list[str]:
    "What breaks the floors: arrows up, circles, dev/ under a worker, modules of no known floor."
    found = []
    for module in sorted(graph):
        if floor(module) is None and module.count(".") and not module.split(".")[1].startswith("_"):
            found.append(f"{module}: no floor for {module.split('.')[1]!r}: add it to FLOORS in tools/check_layers.py")
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = floor(module), floor(target)
            if here is not None and there is not None and there > here:
                found.append(f"{module} (floor {here}) imports {target} (floor {there}): an arrow up")
    for group in circles(graph):
        found.append(f"a circle of {len(group)} modules: {', '.join(group)}")
    roots = [m for m in graph if m.split(".")[1:2] and m.split(".")[1] in WORKER_ROOTS]
    for module in sorted(reachable(graph, roots)):
        if module.split(".")[1:2] == ["dev"]:
            found.append(
                f"{module} is imported by what a worker runs (from {', '.join(WORKER_ROOTS)}/): dev/ is for the project"
            )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", action="store_true", help="print every arrow, module -> module")
    args = parser.parse_args()
    modules = {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}
    graph = arrows(modules)
    if args.graph:
        for module, targets in sorted(graph.items()):
            for target in sorted(targets):
                print(f"{module} -> {target}")
    found = problems(graph)
    for line in found:
        print(line)
    arrows_count = sum(map(len, graph.values()))
    print(f"{len(modules)} modules, {arrows_count} imports between them: {len(found)} problem(s).")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
