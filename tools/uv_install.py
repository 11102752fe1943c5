"""Install into this Python's environment with uv, from the package sources pip is configured with.

`make install` and `make dev` use it: uv installs the same packages as `pip install` (same indexes, find-links
and constraints, read from pip's own configuration, and the best version across them, as pip picks), about
twice as fast on a fresh `.venv` (74 s -> 34 s with the dev extras on a 2-core machine). uv reads no pip
setting itself, hence this script. `PIP_DRY_RUN` is honoured as pip would. Like pip, it compiles the bytecode at
install: uv does not by default, and where PYTHONDONTWRITEBYTECODE is set (CI machines) every process would then
compile every module it imports, every time (a fresh-clone `make test` took 30 CPU-minutes instead of 24).

    .venv/bin/python tools/uv_install.py -e '.[dev]'
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SOURCES = ("index-url", "extra-index-url", "find-links", "constraint")  # pip's settings that say where packages are


def pip_sources() -> list[str]:
    "The package sources this environment's pip is configured with (indexes, find-links, constraints), as uv options."
    # this pip's, also for another target environment (the deployment test's has no pip at all)
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True)
    pairs: dict[tuple[str, str], None] = {}  # in order, each once (pip lists a value from its file and its env)
    for line in listed.stdout.splitlines():  # e.g. global.extra-index-url='file:///a file:///b'
        key, _, value = line.partition("=")
        name = key.rpartition(".")[2]
        if name in SOURCES:
            pairs.update(dict.fromkeys((f"--{name}", source) for source in value.strip("'\"").split()))
    return [part for pair in pairs for part in pair]


def uv_install_command(args: list[str], python: str = sys.executable, compile_bytecode: bool = True) -> list[str]:
    "The `uv pip install` command that installs `args` into `python`'s environment as this one's pip would."
    uv = Path(sys.executable).parent / "uv"
    dry_run = ["--dry-run"] if os.environ.get("PIP_DRY_RUN", "").lower() in ("1", "true", "yes", "on") else []
    return [
        str(uv),
        "pip",
        "install",
        "--quiet",
        # as pip does: with PYTHONDONTWRITEBYTECODE set, no process would ever write them
        *(["--compile-bytecode"] if compile_bytecode else []),
        "--python",
        python,
        "--index-strategy",
        "unsafe-best-match",  # pip's rule: the best version on any index, not the first index that has the name
        *pip_sources(),
        *dry_run,
        *args,
    ]


if __name__ == "__main__":
    if not (Path(sys.executable).parent / "uv").exists():
        sys.exit(f"uv is not installed beside {sys.executable}: {sys.executable} -m pip install uv")
    sys.exit(subprocess.run(uv_install_command(sys.argv[1:])).returncode)
