"""COPY from an S3 external stage: vs. COPY from the local stage, and vs. pyarrow reading S3 directly.

Run from the repository root::

    .venv/bin/python -m tests.benchmarks.bench_s3_copy [--rows N] [--repeat R]

The lineitem-like data of ``bench_flight_core`` is written as 16 Parquet files. The same files are
uploaded (boto3) to a bucket on a moto S3 server that the benchmark starts on loopback (a subprocess,
see ``tests/s3.py``) and placed in root's local user stage of a ``stageflight serve`` subprocess
(``<data_dir>/storage/stage/user/root/pq16/``), so uploads are not measured. The server is started
with ``--allowed-endpoints 127.0.0.1:<moto port>`` and gets an external stage on the bucket.

1. ``COPY INTO li FROM @s3/pq16/`` vs. ``COPY INTO li FROM @~/pq16/`` on the same server and table
   (``TRUNCATE li`` before each run, which also clears the load history): local_time / s3_time.
2. The same S3 COPY vs. pyarrow reading the 16 objects from the same moto server in this process
   (``pyarrow.dataset`` over ``pyarrow.fs.S3FileSystem``, ``to_table()``): pyarrow_time / our_time.

Results go to ``tests/benchmarks/results/s3_copy.json``; see ``tests/benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from tests.benchmarks.bench_copy import DDL
from tests.benchmarks.bench_flight_core import (
    BATCH_ROWS,
    PASSWORD,
    _stageflight_argv,
    checksum,
    connect,
    make_lineitem,
    save_results,
)
from tests.benchmarks.server_procs import _spawn, _stop
from tests.s3 import MotoServer, make_bucket, moto_server, s3_client

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "s3_copy.json"
DEFAULT_ROWS = 10_000_000
FILES = 16
FOLDER = "pq16"
STAGE_PREFIX = "bench/"  # the external stage's URL is s3://<bucket>/bench/
LOCAL_GOAL = 0.5
PYARROW_GOAL = 0.9

CHECK = "SELECT count(*), sum(l_partkey) FROM li"


@dataclass
class Measurement:
    name: str
    unit: str
    ours: float
    reference: float
    ratio: float
    goal: str
    passed: bool | None  # None: for information only
    note: str = ""
    times: dict[str, list[float]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def write_files(table: pa.Table, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-table.num_rows // FILES)
    paths: list[Path] = []
    for i in range(FILES):
        part = table.slice(i * step, step)
        if part.num_rows == 0:
            break
        path = folder / f"part_{i:02d}.parquet"
        pq.write_table(part, path)
        paths.append(path)
    return paths


def upload(server: MotoServer, bucket: str, paths: list[Path]) -> list[str]:
    client = s3_client(server)
    keys: list[str] = []
    for path in paths:
        key = f"{STAGE_PREFIX}{FOLDER}/{path.name}"
        client.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys


def s3_filesystem(server: MotoServer) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=urlsplit(server.endpoint).netloc,
        scheme="http",
        access_key=server.access_key,
        secret_key=server.secret_key,
        region=server.region,
    )


# ---------------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------------


def _fmt_all(times: list[float]) -> str:
    return "[" + ", ".join(f"{t:.2f}" for t in times) + "] s"


def _query_one(cur: Any, sql: str) -> tuple[Any, ...]:
    cur.execute(sql)
    row = cur.fetchone()
    assert row is not None, sql
    return tuple(row)


def copy_runner(conn: Any, source: str, expected: tuple[int, int]) -> Callable[[], float]:
    sql = f"COPY INTO li FROM {source} FILE_FORMAT = (TYPE = PARQUET)"

    def run() -> float:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE li")  # also clears the load history
            cur.fetchall()
            start = time.perf_counter()
            cur.execute(sql)
            result = cur.fetch_arrow_table()
            elapsed = time.perf_counter() - start
            loaded = sum(result.column("Rows_loaded").to_pylist())
            got = _query_one(cur, CHECK)
        if result.num_rows != FILES or loaded != expected[0] or got != expected:
            raise AssertionError(f"{sql}: {result.num_rows} files, {loaded} rows, {got} != {expected}")
        return elapsed

    return run


def pyarrow_runner(fs: pafs.S3FileSystem, paths: list[str], expected: tuple[int, int]) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        table = ds.dataset(paths, filesystem=fs, format="parquet").to_table()
        elapsed = time.perf_counter() - start
        got = checksum(table)
        if got != expected:
            raise AssertionError(f"pyarrow read: {got} != {expected}")
        return elapsed

    return run


def pyarrow_insert_runner(
    fs: pafs.S3FileSystem, paths: list[str], db: duckdb.DuckDBPyConnection, expected: tuple[int, int]
) -> Callable[[], float]:
    """The same objects scanned by one pyarrow dataset (files in parallel), streamed into DuckDB."""

    def run() -> float:
        db.execute("TRUNCATE li")
        start = time.perf_counter()
        reader = ds.dataset(paths, filesystem=fs, format="parquet").scanner(batch_size=BATCH_ROWS).to_reader()
        db.register("src", reader)
        try:
            db.execute("INSERT INTO li SELECT * FROM src")
        finally:
            db.unregister("src")
        elapsed = time.perf_counter() - start
        got = db.execute(CHECK).fetchone()
        if got != expected:
            raise AssertionError(f"pyarrow + DuckDB INSERT: {got} != {expected}")
        return elapsed

    return run


def run(rows: int, repeat: int) -> tuple[list[Measurement], dict[str, Any]]:
    print(f"generating {rows:,} rows ...", flush=True)
    table = make_lineitem(rows)
    expected = checksum(table)
    env = dict(os.environ, STAGEFLIGHT_ROOT_PASSWORD=PASSWORD, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="bench_s3_copy_") as tmp, moto_server() as server:
        work = Path(tmp)
        data_dir = work / "ours"
        paths = write_files(table, data_dir / "storage" / "stage" / "user" / "root" / FOLDER)
        del table
        size = sum(p.stat().st_size for p in paths)
        print(f"  {len(paths)} Parquet files, {size / 2**20:,.0f} MiB", flush=True)
        bucket = make_bucket(server)
        start = time.perf_counter()
        keys = upload(server, bucket, paths)
        print(f"uploaded to moto at {server.endpoint} in {time.perf_counter() - start:.1f} s", flush=True)
        host_port = urlsplit(server.endpoint).netloc
        argv = _stageflight_argv(data_dir) + ["--allowed-endpoints", host_port]
        proc = _spawn("stageflight", argv, env, work, "stageflight ready")
        db = duckdb.connect(str(work / "reference.duckdb"))  # DuckDB defaults, like the server
        try:
            db.execute(DDL)
            conn = connect(proc.uri)
            try:
                with conn.cursor() as cur:
                    cur.execute(DDL)
                    cur.execute(
                        f"CREATE STAGE s3 URL = 's3://{bucket}/{STAGE_PREFIX}' CONNECTION = ("
                        f"ENDPOINT_URL = '{server.endpoint}', ACCESS_KEY_ID = '{server.access_key}', "
                        f"SECRET_ACCESS_KEY = '{server.secret_key}', REGION = '{server.region}')"
                    )
                    cur.fetchall()
                fs = s3_filesystem(server)
                objects = [f"{bucket}/{k}" for k in keys]
                fns: dict[str, Callable[[], float]] = {
                    "s3": copy_runner(conn, f"@s3/{FOLDER}/", expected),
                    "local": copy_runner(conn, f"@~/{FOLDER}/", expected),
                    "pyarrow": pyarrow_runner(fs, objects, expected),
                    "pyarrow_insert": pyarrow_insert_runner(fs, objects, db, expected),
                }
                print("warm-up ...", flush=True)
                for fn in fns.values():
                    fn()
                times: dict[str, list[float]] = {key: [] for key in fns}
                for i in range(repeat):  # interleaved, so drift on the shared machine hits every side
                    for key, fn in fns.items():
                        times[key].append(fn())
                    print(
                        f"  run {i + 1}/{repeat}: "
                        + ", ".join(f"{key} {values[-1]:.2f} s" for key, values in times.items()),
                        flush=True,
                    )
            finally:
                conn.close()
        finally:
            db.close()
            _stop(proc)
    best = {key: min(values) for key, values in times.items()}
    mib = size / 2**20
    local_ratio = best["local"] / best["s3"]
    pyarrow_ratio = best["pyarrow"] / best["s3"]
    results = [
        Measurement(
            f"COPY @s3 vs @~ (Parquet x{FILES})",
            "s",
            best["s3"],
            best["local"],
            local_ratio,
            f">= {LOCAL_GOAL}",
            local_ratio >= LOCAL_GOAL,
            f"{mib:,.0f} MiB; S3 COPY {rows / best['s3']:,.0f} rows/s, {mib / best['s3']:,.0f} MiB/s; "
            f"local COPY {mib / best['local']:,.0f} MiB/s",
            {"ours": times["s3"], "reference": times["local"]},
        ),
        Measurement(
            f"COPY @s3 vs pyarrow S3 read (x{FILES})",
            "s",
            best["s3"],
            best["pyarrow"],
            pyarrow_ratio,
            f">= {PYARROW_GOAL}",
            pyarrow_ratio >= PYARROW_GOAL,
            f"pyarrow.dataset(S3FileSystem).to_table(): {mib / best['pyarrow']:,.0f} MiB/s",
            {"ours": times["s3"], "reference": times["pyarrow"]},
        ),
        Measurement(
            "  info: vs pyarrow scan -> DuckDB INSERT",
            "s",
            best["s3"],
            best["pyarrow_insert"],
            best["pyarrow_insert"] / best["s3"],
            "info",
            None,
            "one pyarrow dataset over the 16 objects streamed into INSERT INTO li of a DuckDB file in "
            f"this process: {mib / best['pyarrow_insert']:,.0f} MiB/s (what reading + storing costs)",
            {"ours": times["s3"], "reference": times["pyarrow_insert"]},
        ),
    ]
    setup = {"files": len(paths), "parquet_bytes": size, "moto_endpoint": server.endpoint}
    return results, setup


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def report(results: list[Measurement], rows: int, repeat: int) -> str:
    header = f"{'measurement':<40} {'ours':>9} {'reference':>10} {'ratio':>6} {'goal':>7}  result"
    lines = [f"stageflight S3 COPY benchmark, {rows:,} rows, best of {repeat}", header, "-" * len(header)]
    for m in results:
        lines.append(
            f"{m.name:<40} {m.ours:>7.2f} {m.unit} {m.reference:>8.2f} {m.unit} {m.ratio:>6.2f} "
            f"{m.goal:>7}  {'info' if m.passed is None else 'PASS' if m.passed else 'FAIL'}"
        )
    lines.append("ratio = reference_time / our_time (higher is better; 1.0 = as fast as the reference)")
    return "\n".join(lines)


def write_json(
    results: list[Measurement], setup: dict[str, Any], rows: int, repeat: int, path: Path = RESULTS_PATH
) -> None:
    header = {"benchmark": "s3_copy", "rows": rows, "repeat": repeat, "setup": setup}
    save_results(path, header, results, "moto")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows of generated lineitem data")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="interleaved repetitions, best kept (default 5, 3 above 5M rows)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results file")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.rows > 5_000_000 else 5)
    results, setup = run(args.rows, repeat)
    print()
    print(report(results, args.rows, repeat))
    for m in results:
        print(f"  {m.name}: {m.note}")
    write_json(results, setup, args.rows, repeat, args.output)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
