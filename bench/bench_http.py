"""Benchmark: a web API as a source. N records served in pages by a local HTTP server, loaded by the kit into a
SQLite warehouse, beside a plain read of the same pages with httpx and pyarrow; peak memory at two sizes.

The API: a process of its own (this script with --serve) on 127.0.0.1, `GET /v1/flights?page=P&limit=L` answering
`{"data": {"items": [...]}}`, each record made as it is asked for (the server holds no list): an integer `id`, a
carrier, a delay (NULL now and then), a nested `crew` object (it lands as JSON text) and an ISO `updated_at`,
with the token `Authorization: Bearer ...` required, as the README's example sends it.

Paths, each run in a fresh process (this script with --one):
  kit    the kit's load of `[table:flights]` with `source = api`, `path = flights`, `records = data.items`,
         `paginate = page`, `limit = --page-size`, `primary_key = id`, the token from ${API_TOKEN}: extract ->
         checks -> atomic publish, as the table's flow runs them without Prefect's API (tests/test_http_source.py's
         load()). A full load's row count check reads the pages a second time to count the API's records.
  plain  the same pages read with one httpx.Client, each page's records into a pyarrow table
         (pa.Table.from_pylist), its rows counted and the table dropped: the floor of reading, writing nothing.
Each path's row count is checked against N (a wrong count fails the cell).

Time: the in-process time of the load or the read (imports not counted), median of --runs runs; the kit's pages
read, and its ratio to the plain read. Memory: the VmHWM of the measured process, read from /proc at its end
(ru_maxrss is inherited across exec, so it is not used); highest of --runs runs. The server's memory is not
counted. Memory that stays flat across sizes is the point: the kit holds one page and one chunk at a time.

Run: .venv/bin/python bench/bench_http.py [--sizes 50000,200000] [--runs 1] [--page-size 1000] [--chunk-size 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-5e1c"
CARRIERS = ["UA", "AA", "DL", "B6", "EV", "WN"]


# ---- the API (a process of its own) -------------------------------------------------------------------------


def record(i: int) -> dict:
    "Record `i` as the API gives it."
    return {
        "id": i,
        "carrier": CARRIERS[i % len(CARRIERS)],
        "delay": None if i % 7 == 0 else (i % 300) * 0.5,
        "crew": {"pilot": f"P{i % 5000}", "seats": [i % 3, i % 5]},
        "updated_at": f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00",
    }


def serve(total: int) -> None:
    "Serve `total` records in pages on a free port of 127.0.0.1; print the port, then serve until killed."
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlparse

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as an API behind a load balancer answers
        disable_nagle_algorithm = True  # the headers and the body as they come, not 40 ms apart (delayed ACKs)

        def do_GET(self):
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, body = 401, {"error": "unauthorized"}
            elif url.path != "/v1/flights":
                status, body = 404, {"error": "no such endpoint"}
            else:
                limit, page = int(query.get("limit", 100)), int(query.get("page", 1))
                first = (page - 1) * limit + 1
                ids = range(first, min(first + limit, total + 1))
                status, body = 200, {"data": {"items": [record(i) for i in ids]}}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_HEAD(self):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# ---- the measured paths (each in its own process) -----------------------------------------------------------


def peak_mb() -> float:
    "This process's peak resident memory (VmHWM), in MB."
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_kit(url: str, page_size: int, chunk_size: int, workdir: Path) -> tuple[int, float]:
    "The kit's full load of the API's records into a fresh SQLite warehouse: (rows loaded, seconds)."
    settings = workdir / "settings.ini"
    settings.write_text(
        f"[pipeline]\nchunk_size = {chunk_size}\n[profile:default]\napi = {url}\n"
        f"warehouse = sqlite:///{workdir / 'warehouse.db'}\n"
        f"[table:flights]\nsource = api\npath = flights\nrecords = data.items\npaginate = page\nlimit = {page_size}\n"
        "primary_key = id\nheaders = Authorization: Bearer ${API_TOKEN}\n"
    )
    os.environ["MY_PACKAGE_SETTINGS"] = str(settings)
    os.environ["API_TOKEN"] = TOKEN
    import my_package.common.sources.http  # noqa: F401  (imported when an API is first read: not timed)
    from my_package.common.runs import resolve_run
    from my_package.flows.factory import dropped_on_failure
    from my_package.tasks.extract import extract_table
    from my_package.tasks.load import load_table_atomically
    from my_package.tasks.verify import check_staged_table

    start = time.perf_counter()
    table_run = resolve_run("flights")
    with dropped_on_failure(table_run):
        staged = extract_table.fn(table_run)
        check_staged_table.fn(table_run, staged)
        rows = load_table_atomically.fn(table_run, staged)
    return rows, time.perf_counter() - start


def run_plain(url: str, page_size: int) -> tuple[int, float]:
    "The same pages read with httpx, each into a pyarrow table, counted and dropped: (rows read, seconds)."
    import httpx
    import pyarrow as pa

    start, rows, page = time.perf_counter(), 0, 1
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        while True:
            answer = client.get(f"{url}/flights", params={"page": page, "limit": page_size})
            answer.raise_for_status()
            records = answer.json()["data"]["items"]
            if not records:
                break
            rows += pa.Table.from_pylist(records).num_rows
            if len(records) < page_size:
                break
            page += 1
    return rows, time.perf_counter() - start


def one(args: argparse.Namespace) -> None:
    "Run one path once in this process; print its rows, seconds and peak memory as JSON."
    if args.one == "kit":
        rows, seconds = run_kit(args.url, args.page_size, args.chunk_size, Path(args.workdir))
    else:
        rows, seconds = run_plain(args.url, args.page_size)
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_mb()}))


# ---- the driver ---------------------------------------------------------------------------------------------


def start_server(total: int) -> tuple[subprocess.Popen, str]:
    "The API serving `total` records, and its base URL."
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(total)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    port = server.stdout.readline().strip()
    if not port.isdigit():
        server.kill()
        raise SystemExit(f"the benchmark's API did not start (it printed {port!r})")
    return server, f"http://127.0.0.1:{port}/v1"


def measure(path: str, url: str, total: int, args: argparse.Namespace) -> dict:
    "Run `path` --runs times, each in a fresh process: median seconds, highest peak memory, or why it failed."
    seconds, peaks = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench_http_") as workdir:
            command = [sys.executable, __file__, "--one", path, "--url", url, "--workdir", workdir]
            command += ["--page-size", str(args.page_size), "--chunk-size", str(args.chunk_size)]
            env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"}
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:60]}
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["rows"] != total:
            return {"error": f"{result['rows']:,} rows, not {total:,}"}
        seconds.append(result["seconds"])
        peaks.append(result["peak_mb"])
    return {"seconds": statistics.median(seconds), "peak_mb": max(peaks)}


def cell(result: dict, key: str, unit: str) -> str:
    "One figure of a result, or its error."
    return f"{result[key]:,.{1 if unit == 'MB' else 2}f} {unit}" if key in result else f"n/a ({result['error']})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--one", choices=("kit", "plain"), help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="50000,200000", help="records served, a comma list (default 50000,200000)")
    p.add_argument("--runs", type=int, default=1, help="runs per measurement; the median time is shown (default 1)")
    p.add_argument("--page-size", type=int, default=1000, help="records per page, the API's `limit` (default 1000)")
    p.add_argument("--chunk-size", type=int, default=50_000, help="rows per batch the kit writes (default 50,000)")
    args = p.parse_args()
    if args.serve is not None:
        return serve(args.serve)
    if args.one:
        return one(args)

    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"bench_http: pages of {args.page_size:,} records, the kit's chunks of {args.chunk_size:,} rows, ", end="")
    print(f"{args.runs} run(s) each; load average {os.getloadavg()[0]:.1f}")
    results = {}
    for total in sizes:
        server, url = start_server(total)
        try:
            for path in ("kit", "plain"):
                results[total, path] = measure(path, url, total, args)
                print(f"  {total:,} records, {path}: {cell(results[total, path], 'seconds', 's')}, ", end="")
                print(cell(results[total, path], "peak_mb", "MB"), flush=True)
        finally:
            server.kill()
            server.wait()

    print()
    print(
        f"{'records':>9}  {'kit load':>10}  {'plain read':>10}  {'kit/plain':>9}  {'kit peak':>10}  {'plain peak':>10}"
    )
    for total in sizes:
        kit, plain = results[total, "kit"], results[total, "plain"]
        ratio = f"{kit['seconds'] / plain['seconds']:.2f}x" if "seconds" in kit and "seconds" in plain else "n/a"
        print(
            f"{total:>9,}  {cell(kit, 'seconds', 's'):>10}  {cell(plain, 'seconds', 's'):>10}  {ratio:>9}  "
            f"{cell(kit, 'peak_mb', 'MB'):>10}  {cell(plain, 'peak_mb', 'MB'):>10}"
        )
    low, high = results[sizes[0], "kit"], results[sizes[-1], "kit"]
    if len(sizes) > 1 and "peak_mb" in low and "peak_mb" in high:
        grown = sizes[-1] / sizes[0]
        print(f"the kit's peak memory at {grown:g}x the records: {high['peak_mb'] / low['peak_mb']:.2f}x")


if __name__ == "__main__":
    main()
