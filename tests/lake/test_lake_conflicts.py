"""Two real lake nodes changing one table at once (issue 14): an ingest that loses a race to the
other node's change runs again, and a COMMIT that loses one still ends its transaction (and lets
go of the COPY load lock it held).

Lake mode needs DuckDB 1.5.5 with its extension wheels (``pip install -e '.[lake,test]'``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import duckdb
import pyarrow as pa
import pytest

from tests.e2e.stage_helpers import execute, query
from tests.lake.conftest import attach_bare_lake
from tests.lake.test_lake_failures import _nodes, _stage_files
from tests.lake.test_lake_nodes import _connect, _count, _lake_missing, _name
from tests.pg import PgCluster

pytestmark = pytest.mark.skipif(_lake_missing() is not None, reason=str(_lake_missing()))


@pytest.fixture(scope="module")
def nodes(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with _nodes(pg_cluster, tmp_path_factory.mktemp("conflicts")) as started:
        yield started


@pytest.fixture
def roots(nodes: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    with _connect(nodes["a"]) as ra, _connect(nodes["b"]) as rb:
        yield ra, rb


def test_an_ingest_while_the_other_node_deletes_from_the_table_lands_whole(roots):
    """The client's stream is slow, and the other node deletes from the table while it is sent:
    the ingest's lake write does not lose to that delete (it is staged, then retried if it must)."""
    ra, rb = roots
    t = _name("ing")
    execute(ra, f"CREATE TABLE {t} AS SELECT range::BIGINT AS i FROM range(1000)")
    deleted: list[int] = []

    def slow_batches() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"i": pa.array(range(10_000, 15_000), pa.int64())})
        time.sleep(1.0)  # node A is inside its INSERT now, waiting for more rows
        deleted.append(execute(rb, f"DELETE FROM {t} WHERE i < 100"))
        yield pa.record_batch({"i": pa.array(range(15_000, 20_000), pa.int64())})

    reader = pa.RecordBatchReader.from_batches(pa.schema([("i", pa.int64())]), slow_batches())
    with ra.cursor() as cur:
        assert cur.adbc_ingest(t, reader, mode="append") == 10_000
    assert deleted == [100]
    assert _count(ra, t) == 900 + 10_000
    assert query(rb, f"SELECT min(i) AS lo, max(i) AS hi FROM {t}") == [{"lo": 100, "hi": 19_999}]


def test_a_commit_that_loses_to_the_other_node_releases_its_copy_lock(nodes, roots):
    """B's transaction COPYs into t (taking t's load lock until it ends); A deletes from t and
    commits first, so B's COMMIT fails. B's transaction is over: A's own COPY into t goes ahead
    at once instead of waiting for a lock nobody will release."""
    ra, rb = roots
    t, stage = _name("lk"), _name("st")
    execute(ra, f"CREATE TABLE {t} (f INTEGER, i BIGINT)")
    execute(ra, f"INSERT INTO {t} VALUES (-1, -1), (-2, -2)")
    execute(ra, f"CREATE STAGE {stage}")
    _stage_files(Path(nodes["root"]) / "stage" / "internal" / stage, count=2, rows=1000)
    with rb.cursor() as cb:
        cb.execute("BEGIN TRANSACTION")
        cb.execute(f"COPY INTO {t} FROM @{stage}")
        assert len(cb.fetchall()) == 2
        assert execute(ra, f"DELETE FROM {t} WHERE f = -1") == 1
        with pytest.raises(dbapi.Error, match="Concurrent change: another transaction changed the same"):
            cb.execute("COMMIT")
    loaded: list[Any] = []

    def copy_on_a() -> None:
        loaded.append([r["File"] for r in query(ra, f"COPY INTO {t} FROM @{stage}")])

    worker = threading.Thread(target=copy_on_a)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "A's COPY still waits for the load lock B's failed COMMIT held"
    assert loaded == [["part_00.parquet", "part_01.parquet"]]
    assert _count(rb, t) == 1 + 2000
    execute(rb, f"INSERT INTO {t} VALUES (-3, -3)")  # B's session is out of the transaction, autocommit
    assert _count(ra, t) == 1 + 2000 + 1


def test_a_commit_that_lost_to_another_node_retries_after_a_short_bounded_wait(pg_cluster, tmp_path):
    """DuckLake's own defaults (100 ms, backoff 1.5 per retry, uncapped) cost the loser of two
    concurrent commits 50-100 ms, and with 100 retries the waits had no bound."""
    con = duckdb.connect()
    try:
        attach_bare_lake(con, pg_cluster, pg_cluster.new_schema(), tmp_path)
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN "
                "('ducklake_max_retry_count', 'ducklake_retry_wait_ms', 'ducklake_retry_backoff')"
            ).fetchall()
        )
    finally:
        con.close()
    retries, wait_ms = int(settings["ducklake_max_retry_count"]), int(settings["ducklake_retry_wait_ms"])
    assert float(settings["ducklake_retry_backoff"]) == 1.0  # no exponent: the total wait is bounded
    assert retries == 100 and wait_ms == 5
    assert retries * wait_ms <= 1000  # at most a second asleep before the conflict reaches the client
