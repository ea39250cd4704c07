"""/metrics (issue 16 item 13), the rest: bytes COPY INTO <table> read by format, statements that end
cancelled (KILL QUERY and the client cancelling) and the streaming-results gauge while a client reads
a large result. Scraped over real HTTP from a private server and parsed with prometheus_client's parser."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import connect
from tests.e2e.stage_helpers import execute, put, query
from tests.flight.test_metrics import scrape, value
from tests.long_queries import long_query, wait_running


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_copy_bytes_are_counted_by_format(start_server: Callable[..., Any]) -> None:
    running = start_server()
    csv_files = [b"1,a\n2,b\n", b"3,c\n" * 50]
    parquet_file = parquet_bytes(pa.table({"id": pa.array([4, 5], pa.int32()), "name": ["d", "e"]}))
    with connect(running) as conn:
        execute(conn, "CREATE TABLE m (id INTEGER, name VARCHAR)")
        for i, body in enumerate(csv_files):
            put(conn, f"@~/csv/{i}.csv", body)
        put(conn, "@~/pq/0.parquet", parquet_file)
        before = scrape(running)
        query(conn, "COPY INTO m FROM @~/csv/ FILE_FORMAT = (TYPE = CSV)")
        middle = scrape(running)
        query(conn, "COPY INTO m FROM @~/pq/ FILE_FORMAT = (TYPE = PARQUET)")
        # Loaded already: nothing is read again.
        query(conn, "COPY INTO m FROM @~/csv/ FILE_FORMAT = (TYPE = CSV)")
        after = scrape(running)
        assert query(conn, "SELECT count(*) AS n FROM m") == [{"n": 54}]

    def moved(since: Any, until: Any, fmt: str) -> float:
        return value(until, "stageflight_copy_bytes_total", format=fmt) - value(
            since, "stageflight_copy_bytes_total", format=fmt
        )

    assert moved(before, middle, "csv") == sum(len(b) for b in csv_files)
    assert moved(middle, after, "csv") == 0
    assert moved(middle, after, "parquet") == len(parquet_file)
    assert value(after, "stageflight_copy_rows_total") == 54


def _cancelled(samples: Any) -> float:
    return value(samples, "stageflight_statements_total", kind="select", outcome="cancelled")


def test_kill_query_counts_a_cancelled_statement(start_server: Callable[..., Any]) -> None:
    running = start_server()
    sql = long_query("m")
    outcome: list[BaseException | None] = []

    def run() -> None:
        with connect(running) as conn, conn.cursor() as cur:
            try:
                cur.execute(sql)
                cur.fetchall()
                outcome.append(None)
            except BaseException as exc:  # asserted below
                outcome.append(exc)

    before = scrape(running)
    with connect(running) as root:
        worker = threading.Thread(target=run)
        worker.start()
        try:
            row = wait_running(root, sql)
            execute(root, f"KILL QUERY {row['id']}")
        finally:
            worker.join(60)
    [error] = outcome
    assert isinstance(error, dbapi.OperationalError) and str(error).startswith("CANCELLED: ")
    after = scrape(running)
    assert _cancelled(after) - _cancelled(before) == 1
    ok = value(after, "stageflight_statements_total", kind="kill", outcome="ok")
    assert ok - value(before, "stageflight_statements_total", kind="kill", outcome="ok") == 1


def test_client_cancel_counts_a_cancelled_statement(start_server: Callable[..., Any]) -> None:
    running = start_server()
    sql = long_query("c")
    before = scrape(running)
    with connect(running) as root, connect(running) as conn, conn.cursor() as cur:
        watcher = threading.Thread(target=lambda: (wait_running(root, sql), cur.adbc_cancel()))
        watcher.start()
        try:
            with pytest.raises(dbapi.OperationalError, match="^CANCELLED: "):
                cur.execute(sql)
                cur.fetchall()
        finally:
            watcher.join(60)
        cur.execute("SELECT 'still serving' AS s")
        assert cur.fetchall() == [("still serving",)]
    after = scrape(running)
    assert _cancelled(after) - _cancelled(before) == 1
    assert value(after, "stageflight_statements_total", kind="select", outcome="error") == value(
        before, "stageflight_statements_total", kind="select", outcome="error"
    )


def test_streaming_gauge_while_a_large_result_is_read(start_server: Callable[..., Any]) -> None:
    running = start_server()
    prior = value(scrape(running), "stageflight_streaming_results")
    with connect(running) as conn, conn.cursor() as cur:
        cur.execute("SELECT range AS i, repeat('x', 64) AS pad FROM range(3000000)")
        reader = cur.fetch_record_batch()
        first = reader.read_next_batch()
        assert first.num_rows > 0
        assert value(scrape(running), "stageflight_streaming_results") == prior + 1
        rows = first.num_rows + sum(batch.num_rows for batch in reader)
        assert rows == 3_000_000
        deadline = time.monotonic() + 10
        while (
            value(scrape(running), "stageflight_streaming_results") != prior and time.monotonic() < deadline
        ):
            time.sleep(0.05)  # the server closes the stream once its last batch is sent
        assert value(scrape(running), "stageflight_streaming_results") == prior
