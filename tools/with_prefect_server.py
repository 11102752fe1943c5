"""Run a command with a throwaway Prefect server on 127.0.0.1 (PREFECT_API_URL set), then stop the server.

`make nbtest` runs nbdev_test this way: notebooks that run flows use this server instead of each starting a
temporary one that could outlive the test run.

    python tools/with_prefect_server.py nbdev_test --n_workers 2
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from my_package.dev.server import free_port, start_server, stop_process


def main(command: list[str]) -> int:
    "Start the server, run `command` against it, stop the server; return the command's exit status."
    with tempfile.TemporaryDirectory(prefix="prefect-home-") as home:
        port = free_port()
        server = start_server(Path(home), port, Path(home) / "server.log")
        try:
            env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_HOME": home}
            return subprocess.run(command, env=env).returncode
        finally:
            stop_process(server.pid)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
