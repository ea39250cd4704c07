"""COPY file-reader benchmark: stages.readers fast path vs DuckDB's own read_csv/read_parquet.

Run from the repository root (not collected by pytest)::

    .venv/bin/python -m tests.benchmarks.bench_readers [--rows 5000000] [--repeat 3]

Both sides insert into a pre-created in-memory DuckDB table (``INSERT INTO t SELECT * FROM ...``);
ours registers the RecordBatchReader returned by ``open_file_reader``. The data mirrors
security.md §2.2 (id, name, amount, ts, category, flag). Prints the median times and the ratio
native/ours (>= 0.9 is the goal).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from stages.on_error import ABORT
from stages.readers import open_file_reader
from stages.storage.local import LocalBackend

DDL = (
    "CREATE OR REPLACE TABLE t "
    "(id BIGINT, name VARCHAR, amount DOUBLE, ts TIMESTAMP, category VARCHAR, flag BOOLEAN)"
)
TARGET = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("amount", pa.float64()),
        ("ts", pa.timestamp("us")),
        ("category", pa.string()),
        ("flag", pa.bool_()),
    ]
)


def generate(root: Path, rows: int) -> None:
    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE g AS SELECT i AS id, 'name_' || (i % 100000) AS name,
        ((i % 10007) * 1.25)::DOUBLE AS amount,
        TIMESTAMP '2024-01-01' + to_seconds(i) AS ts, 'cat' || (i % 50) AS category, i % 3 = 0 AS flag
        FROM range({rows}) r(i)"""
    )
    (root / "b").mkdir(exist_ok=True)
    con.execute(f"COPY g TO '{root}/b/data.csv' (HEADER true)")
    con.execute(f"COPY g TO '{root}/b/data.parquet' (FORMAT parquet)")


def timed(run: Callable[[duckdb.DuckDBPyConnection], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.execute(DDL)
        start = time.perf_counter()
        run(con)
        times.append(time.perf_counter() - start)
        count = con.execute("SELECT count(*), sum(id) FROM t").fetchone()
        assert count is not None and count[0] > 0
        con.close()
    return statistics.median(times)


Run = Callable[[duckdb.DuckDBPyConnection], None]


def ours(backend: LocalBackend, key: str, options: dict[str, str]) -> Run:
    def run(con: duckdb.DuckDBPyConnection) -> None:
        reader, stats = open_file_reader(backend, key, key, options, TARGET, on_error=ABORT)
        con.register("reg", reader)
        con.execute("INSERT INTO t SELECT * FROM reg")
        con.unregister("reg")
        assert stats.errors_seen == 0

    return run


def native(sql: str) -> Callable[[duckdb.DuckDBPyConnection], None]:
    def run(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(sql)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, args.rows)
        backend = LocalBackend(root)
        cases = [
            (
                "CSV",
                native(f"INSERT INTO t SELECT * FROM read_csv('{root}/b/data.csv', header=true)"),
                ours(backend, "b/data.csv", {"TYPE": "CSV", "SKIP_HEADER": "1"}),
            ),
            (
                "PARQUET",
                native(f"INSERT INTO t SELECT * FROM read_parquet('{root}/b/data.parquet')"),
                ours(backend, "b/data.parquet", {"TYPE": "PARQUET"}),
            ),
        ]
        for name, duck, mine in cases:
            duck_s, mine_s = timed(duck, args.repeat), timed(mine, args.repeat)
            ratio = duck_s / mine_s
            print(f"{name:8} rows={args.rows} duckdb={duck_s:.3f}s ours={mine_s:.3f}s ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
