"""Find processes of the project left running: Prefect servers and workers, Jupyter kernels, PostgreSQL, browsers.

`.ci/run` takes a snapshot before `make test` and checks after it: a process of those kinds that was not there
before and is still running fails the run, listed with its command line.

    python3 tools/leftover_processes.py snapshot > before.txt
    python3 tools/leftover_processes.py check before.txt
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("prefect", "ipykernel", "jupyter", "postgres", "chromium", "uvicorn", "my_package.runner", str(ROOT))


def ancestors() -> set[int]:
    "This process and its parents (the shell that runs the check must not count)."
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def project_processes() -> dict[int, str]:
    "Running processes whose command line names one of KINDS, by pid."
    found, mine = {}, ancestors()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        if command and state != "Z" and any(kind in command for kind in KINDS):
            found[int(entry.name)] = command
    return found


def main(argv: list[str]) -> int:
    "snapshot: print the pids of such processes; check FILE: fail on those not in FILE (after a short grace)."
    if argv[:1] == ["snapshot"]:
        print("\n".join(str(pid) for pid in project_processes()))
        return 0
    if len(argv) != 2 or argv[0] != "check":
        print(__doc__)
        return 2
    before = {int(line) for line in Path(argv[1]).read_text().split()}
    for _ in range(20):  # processes being stopped get ten seconds to exit
        left = {pid: cmd for pid, cmd in project_processes().items() if pid not in before}
        if not left:
            print("No process of the project is left running.")
            return 0
        time.sleep(0.5)
    print(f"FAIL: {len(left)} process(es) started by the run are still running:")
    for pid, command in sorted(left.items()):
        print(f"  {pid}: {command[:300]}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
