"""The database's WAL stays bounded: the server checkpoints even while other sessions are busy.

Each cycle loads 2M rows and truncates them; the TRUNCATE alone writes ~16 MB to the WAL. Before the
fix, a half-read catalog lookup on the server's cursor kept DuckDB from ever checkpointing, and the
WAL grew by that much per cycle for the life of the server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.catalog.database import CHECKPOINT_WAL_BYTES
from flight.app import RunningServer
from tests.conftest import connect

CYCLES = 6
ROWS = 2_000_000


def _wal_bytes(server: RunningServer) -> int:
    wal = server.engine.db.wal_path
    return wal.stat().st_size if wal.exists() else 0


def _load_and_truncate(cur: Any, server: RunningServer) -> list[int]:
    cur.execute("CREATE TABLE churn (id BIGINT, tag VARCHAR)")
    sizes = []
    for _ in range(CYCLES):
        cur.execute(f"INSERT INTO churn SELECT range, (range % 7)::VARCHAR FROM range({ROWS})")
        cur.execute("SELECT count(*), sum(id) FROM churn")
        assert cur.fetchall() == [(ROWS, ROWS * (ROWS - 1) // 2)]
        cur.execute("TRUNCATE churn")
        sizes.append(_wal_bytes(server))
    cur.execute("SELECT count(*) FROM churn")
    assert cur.fetchall() == [(0,)]
    return sizes


def test_wal_is_checkpointed_across_load_and_truncate_cycles(start_server: Callable[..., RunningServer]):
    server = start_server()
    with connect(server) as conn, conn.cursor() as cur:
        sizes = _load_and_truncate(cur, server)
    # Without checkpoints the WAL would reach ~CYCLES * 16 MB.
    assert max(sizes) < 2 * CHECKPOINT_WAL_BYTES, sizes


def test_wal_is_checkpointed_after_a_long_read_ends_without_further_writes(
    start_server: Callable[..., RunningServer],
):
    server = start_server()
    with connect(server) as reader_conn, reader_conn.cursor() as reader:
        with connect(server) as conn, conn.cursor() as cur:
            # Larger than the read-ahead budget: the reader's session keeps its DuckDB result open,
            # and its transaction predates the table below: DuckDB cannot checkpoint until it ends.
            reader.execute("SELECT range AS n FROM range(5000000)")
            cur.execute("CREATE TABLE churn (id BIGINT)")
            for _ in range(2):
                cur.execute(f"INSERT INTO churn SELECT range FROM range({ROWS})")
                cur.execute("TRUNCATE churn")
            pinned = _wal_bytes(server)
            assert reader.fetch_arrow_table().num_rows == 5_000_000
            # Only a read follows: DuckDB checkpoints on its own only when a write commits.
            cur.execute("SELECT count(*) FROM churn")
            assert cur.fetchall() == [(0,)]
            assert pinned > CHECKPOINT_WAL_BYTES
            assert _wal_bytes(server) < CHECKPOINT_WAL_BYTES
