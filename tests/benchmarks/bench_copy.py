"""COPY INTO benchmark: stageflight's stage COPY vs. DuckDB's own readers/writer (the physical limit).

Run from the repository root::

    .venv/bin/python -m tests.benchmarks.bench_copy [--rows N] [--repeat R]

The lineitem-like data of ``bench_flight_core`` is written as CSV (1 file, 16 files) and Parquet
(1 file, 16 files) straight into root's user stage of a ``stageflight serve`` subprocess (the local
storage layout ``<data_dir>/storage/stage/user/root/``), so uploads are not measured. Ours is
``COPY INTO li FROM @~/csv1/ ...`` through ADBC; the limit is DuckDB's ``INSERT INTO li SELECT * FROM
read_csv([...])`` / ``read_parquet([...])`` of the same files into a fresh DuckDB file database in this
process. Unload (``COPY INTO @~/unload/ FROM li``) is compared with DuckDB's ``COPY li TO ...
(FORMAT parquet)``. A second server with ``--memory-limit 256MB`` loads a CSV of at least 4x that size
and its peak RSS (``VmHWM``) is reported. Results go to ``tests/benchmarks/results/copy.json``; see
``tests/benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tests.benchmarks.bench_flight_core import (
    PASSWORD,
    _stageflight_argv,
    checksum,
    connect,
    make_lineitem,
    save_results,
)
from tests.benchmarks.server_procs import Proc, _spawn, _stop

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "copy.json"
DEFAULT_ROWS = 10_000_000
SPLIT_FILES = 16
RSS_MEMORY_LIMIT = "256MB"
RSS_MEMORY_LIMIT_BYTES = 256 * 1000**2  # DuckDB: MB = 1000^2 bytes
RSS_FACTOR = 4  # the CSV for the RSS test is at least this many times the memory limit
GOAL = 0.9
SETTLE_SECONDS = 0.5

# The target table: the exact types of LINEITEM_SCHEMA, in DuckDB spelling.
COLUMNS: list[tuple[str, str]] = [
    ("l_orderkey", "BIGINT"),
    ("l_partkey", "BIGINT"),
    ("l_suppkey", "BIGINT"),
    ("l_linenumber", "INTEGER"),
    ("l_quantity", "DOUBLE"),
    ("l_extendedprice", "DOUBLE"),
    ("l_discount", "DOUBLE"),
    ("l_tax", "DOUBLE"),
    ("l_returnflag", "VARCHAR"),
    ("l_linestatus", "VARCHAR"),
    ("l_shipdate", "DATE"),
    ("l_commitdate", "DATE"),
    ("l_shipmode", "VARCHAR"),
]
DDL = "CREATE TABLE li (" + ", ".join(f"{name} {typ}" for name, typ in COLUMNS) + ")"
CSV_COLUMNS = "{" + ", ".join(f"'{name}': '{typ}'" for name, typ in COLUMNS) + "}"


# ---------------------------------------------------------------------------------------------
# data files
# ---------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str  # stage folder, e.g. csv16
    fmt: str  # CSV | PARQUET
    files: list[Path]

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p in self.files)


def _slices(table: pa.Table, parts: int) -> list[pa.Table]:
    step = -(-table.num_rows // parts)
    return [table.slice(i * step, step) for i in range(parts) if i * step < table.num_rows]


def write_datasets(table: pa.Table, stage_dir: Path) -> list[Dataset]:
    out: list[Dataset] = []
    for fmt, ext in (("CSV", "csv"), ("PARQUET", "parquet")):
        for parts in (1, SPLIT_FILES):
            folder = stage_dir / f"{ext}{parts}"
            folder.mkdir(parents=True, exist_ok=True)
            files: list[Path] = []
            for i, part in enumerate(_slices(table, parts)):
                path = folder / f"part_{i:02d}.{ext}"
                if fmt == "CSV":
                    pacsv.write_csv(part, path, pacsv.WriteOptions(include_header=False))
                else:
                    pq.write_table(part, path)
                files.append(path)
            out.append(Dataset(f"{ext}{parts}", fmt, files))
    return out


def write_big_csv(table: pa.Table, path: Path, min_bytes: int) -> int:
    """Write ``table`` as headerless CSV to ``path`` repeatedly until it has at least ``min_bytes``."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    chunk = sink.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = written = 0
    with path.open("wb") as f:
        while written < min_bytes:
            f.write(chunk)
            written += chunk.size
            rows += table.num_rows
    return rows


# ---------------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    name: str
    unit: str
    ours: float
    limit: float | None
    ratio: float | None
    goal: str
    passed: bool | None  # None: for information only
    note: str = ""
    times: dict[str, list[float]] = field(default_factory=dict)


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def _fmt_all(times: list[float]) -> str:
    return "[" + ", ".join(f"{t:.2f}" for t in times) + "] s"


def settle() -> None:
    """Let the previous measurement's after-effects finish before the next one starts.

    Both sides write a few hundred MB to their database files; the kernel writes those dirty pages
    back over the following seconds, which otherwise lands in whichever side runs next.
    """
    os.sync()
    time.sleep(SETTLE_SECONDS)


def _query_one(cur: Any, sql: str) -> tuple[Any, ...]:
    cur.execute(sql)
    row = cur.fetchone()
    assert row is not None, sql
    return tuple(row)


def bench_load(
    conn: Any, limit_db: duckdb.DuckDBPyConnection, ds: Dataset, expected: tuple[int, int], repeat: int
) -> Measurement:
    print(f"COPY {ds.name} ({ds.fmt}, {len(ds.files)} files, {ds.size / 2**20:,.0f} MiB) ...", flush=True)
    copy_sql = f"COPY INTO li FROM @~/{ds.name}/ FILE_FORMAT = (TYPE = {ds.fmt})"
    if ds.fmt == "CSV":
        source = f"read_csv({_sql_list(ds.files)}, header = false, columns = {CSV_COLUMNS})"
    else:
        source = f"read_parquet({_sql_list(ds.files)})"
    limit_sql = f"INSERT INTO li SELECT * FROM {source}"
    check = "SELECT count(*), sum(l_partkey) FROM li"

    def ours() -> float:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE li")
            settle()
            start = time.perf_counter()
            cur.execute(copy_sql)
            result = cur.fetch_arrow_table()
            elapsed = time.perf_counter() - start
            loaded = sum(result.column("Rows_loaded").to_pylist())
            got = _query_one(cur, check)
        if result.num_rows != len(ds.files) or loaded != expected[0] or got != expected:
            raise AssertionError(
                f"ours {ds.name}: {result.num_rows} files, {loaded} rows, {got} != {expected}"
            )
        return elapsed

    def limit() -> float:
        limit_db.execute("TRUNCATE li")
        settle()
        start = time.perf_counter()
        limit_db.execute(limit_sql)
        elapsed = time.perf_counter() - start
        got = limit_db.execute(check).fetchone()
        if got != expected:
            raise AssertionError(f"limit {ds.name}: {got} != {expected}")
        return elapsed

    our_all: list[float] = []
    lim_all: list[float] = []
    for _ in range(repeat):  # interleaved, so drift on the shared machine hits both sides
        our_all.append(ours())
        lim_all.append(limit())
    our_t, lim_t = min(our_all), min(lim_all)
    ratio = lim_t / our_t
    print(f"  ours {_fmt_all(our_all)}  limit {_fmt_all(lim_all)}  ratio {ratio:.2f}", flush=True)
    return Measurement(
        f"COPY INTO li FROM {ds.fmt} x{len(ds.files)}",
        "s",
        our_t,
        lim_t,
        ratio,
        f">= {GOAL}",
        ratio >= GOAL,
        f"{ds.size / 2**20:,.0f} MiB; ours {expected[0] / our_t:,.0f} rows/s, "
        f"{ds.size / 2**20 / our_t:,.0f} MiB/s",
        {"ours": our_all, "limit": lim_all},
    )


def bench_unload(conn: Any, limit_db: duckdb.DuckDBPyConnection, work: Path, repeat: int) -> Measurement:
    print("COPY INTO @~/unload/ FROM li (Parquet) ...", flush=True)
    out = work / "limit_unload.parquet"
    our_all: list[float] = []
    lim_all: list[float] = []
    our_bytes = 0
    for _ in range(repeat):
        with conn.cursor() as cur:
            cur.execute("REMOVE @~/unload/")
            cur.fetchall()
            settle()
            start = time.perf_counter()
            cur.execute("COPY INTO @~/unload/ FROM li")
            result = cur.fetch_arrow_table().to_pylist()
            our_all.append(time.perf_counter() - start)
        our_bytes = int(result[0]["output_bytes"])
        out.unlink(missing_ok=True)
        settle()
        start = time.perf_counter()
        limit_db.execute(f"COPY li TO '{out}' (FORMAT parquet)")
        lim_all.append(time.perf_counter() - start)
    lim_bytes = out.stat().st_size
    our_t, lim_t = min(our_all), min(lim_all)
    ratio = lim_t / our_t
    mb = 1e6
    print(f"  ours {_fmt_all(our_all)}  limit {_fmt_all(lim_all)}  ratio {ratio:.2f}", flush=True)
    return Measurement(
        "COPY INTO @~/unload/ FROM li (Parquet)",
        "s",
        our_t,
        lim_t,
        ratio,
        "info",
        None,
        f"ours {our_bytes / mb:,.0f} MB at {our_bytes / mb / our_t:,.0f} MB/s; "
        f"limit {lim_bytes / mb:,.0f} MB at {lim_bytes / mb / lim_t:,.0f} MB/s",
        {"ours": our_all, "limit": lim_all},
    )


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM of a process, in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def bench_rss(table: pa.Table, work: Path, env: dict[str, str]) -> Measurement:
    print(f"peak RSS: COPY of a CSV >= {RSS_FACTOR}x --memory-limit {RSS_MEMORY_LIMIT} ...", flush=True)
    data_dir = work / "rss"
    csv = data_dir / "storage" / "stage" / "user" / "root" / "big" / "big.csv"
    rows = write_big_csv(table, csv, int(RSS_FACTOR * RSS_MEMORY_LIMIT_BYTES * 1.02))
    size = csv.stat().st_size
    print(f"  {csv.name}: {size / 2**20:,.0f} MiB, {rows:,} rows", flush=True)
    argv = _stageflight_argv(data_dir) + ["--memory-limit", RSS_MEMORY_LIMIT]
    proc: Proc = _spawn("stageflight_rss", argv, env, work, "stageflight ready")
    try:
        pid = proc.popen.pid
        conn = connect(proc.uri)
        try:
            with conn.cursor() as cur:
                cur.execute(DDL)
                before = _proc_status(pid)
                start = time.perf_counter()
                cur.execute("COPY INTO li FROM @~/big/ FILE_FORMAT = (TYPE = CSV)")
                result = cur.fetch_arrow_table()
                elapsed = time.perf_counter() - start
                after = _proc_status(pid)
                got = _query_one(cur, "SELECT count(*) FROM li")
        finally:
            conn.close()
    finally:
        _stop(proc)
    if got[0] != rows or sum(result.column("Rows_loaded").to_pylist()) != rows:
        raise AssertionError(f"RSS COPY loaded {got[0]} rows, expected {rows}")
    peak = after["VmHWM"]
    mib = 2**20
    note = (
        f"file {size / mib:,.0f} MiB ({size / RSS_MEMORY_LIMIT_BYTES:.1f}x limit), "
        f"loaded in {elapsed:.1f} s; "
        f"RSS before {before['VmRSS'] / mib:,.0f} MiB (HWM {before['VmHWM'] / mib:,.0f}), "
        f"peak {peak / mib:,.0f} MiB = {peak / size:.2f}x file, {peak / RSS_MEMORY_LIMIT_BYTES:.2f}x limit"
    )
    print(f"  {note}", flush=True)
    return Measurement(
        "peak RSS, COPY CSV 4x memory limit",
        "MiB",
        peak / mib,
        size / mib,
        peak / size,
        "info",
        None,
        note,
        {
            "file_bytes": [float(size)],
            "memory_limit_bytes": [float(RSS_MEMORY_LIMIT_BYTES)],
            "rss_before_bytes": [float(before["VmRSS"])],
            "hwm_before_bytes": [float(before["VmHWM"])],
            "peak_rss_bytes": [float(peak)],
            "peak_over_limit": [peak / RSS_MEMORY_LIMIT_BYTES],
            "seconds": [elapsed],
        },
    )


def run(rows: int, repeat: int, skip_rss: bool = False, work_dir: Path | None = None) -> list[Measurement]:
    print(f"generating {rows:,} rows ...", flush=True)
    table = make_lineitem(rows)
    expected = checksum(table)
    env = dict(os.environ, STAGEFLIGHT_ROOT_PASSWORD=PASSWORD, PYTHONUNBUFFERED="1")
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bench_copy_", dir=work_dir) as tmp:
        work = Path(tmp)
        data_dir = work / "ours"
        stage_dir = data_dir / "storage" / "stage" / "user" / "root"
        print("writing files ...", flush=True)
        datasets = write_datasets(table, stage_dir)
        for ds in datasets:
            print(f"  {ds.name}: {len(ds.files)} files, {ds.size / 2**20:,.0f} MiB", flush=True)
        proc = _spawn("stageflight", _stageflight_argv(data_dir), env, work, "stageflight ready")
        limit_db = duckdb.connect(str(work / "limit.duckdb"))  # DuckDB defaults, like the server
        try:
            limit_db.execute(DDL)
            conn = connect(proc.uri)
            try:
                with conn.cursor() as cur:
                    cur.execute(DDL)
                for ds in datasets:
                    results.append(bench_load(conn, limit_db, ds, expected, repeat))
                results.append(bench_unload(conn, limit_db, work, repeat))
            finally:
                conn.close()
        finally:
            limit_db.close()
            _stop(proc)
        if not skip_rss:
            del table  # the RSS test rewrites the data itself, in chunks of the same table
            chunk = make_lineitem(min(rows, 1_000_000))
            results.append(bench_rss(chunk, work, env))
    return results


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def report(results: list[Measurement], rows: int, repeat: int) -> str:
    header = f"{'measurement':<40} {'ours':>12} {'limit':>12} {'ratio':>6} {'goal':>7}  result"
    lines = [f"stageflight COPY benchmark, {rows:,} rows, best of {repeat}", header, "-" * len(header)]
    for m in results:
        limit = f"{m.limit:>8.2f} {m.unit:<3}" if m.limit is not None else f"{'-':>12}"
        ratio = f"{m.ratio:>6.2f}" if m.ratio is not None else f"{'-':>6}"
        verdict = "info" if m.passed is None else "PASS" if m.passed else "FAIL"
        lines.append(f"{m.name:<40} {m.ours:>8.2f} {m.unit:<3} {limit} {ratio} {m.goal:>7}  {verdict}")
    lines.append(
        "ratio: loads and unload = limit_time / our_time (higher is better, 1.0 = DuckDB's own speed); "
        "peak RSS: limit column = file size, ratio = peak RSS / file size"
    )
    return "\n".join(lines)


def write_json(
    results: list[Measurement],
    rows: int,
    repeat: int,
    path: Path = RESULTS_PATH,
    work_dir: Path | None = None,
) -> None:
    header = {
        "benchmark": "copy",
        "rows": rows,
        "repeat": repeat,
        "work_dir": str(work_dir or tempfile.gettempdir()),
    }
    save_results(path, header, results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows of generated lineitem data")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per measurement, best kept")
    parser.add_argument("--skip-rss", action="store_true", help="skip the peak-RSS measurement")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the temporary data dir, files and limit database go (default: the system temp dir; "
        "/dev/shm takes disk I/O out of the comparison)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results file")
    args = parser.parse_args(argv)
    results = run(args.rows, args.repeat, args.skip_rss, args.work_dir)
    print()
    print(report(results, args.rows, args.repeat))
    for m in results:
        if m.note:
            print(f"  {m.name}: {m.note}")
    write_json(results, args.rows, args.repeat, args.output, args.work_dir)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
