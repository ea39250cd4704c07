"""/metrics (issue 16 item 13): Prometheus exposition read with prometheus_client's own parser,
from a private server over real HTTP, each counter moving by what the test did."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import connect
from tests.e2e.stage_helpers import execute, http_status, presign, put, query

BAD_CSV = b"1,a\nx,b\n3,c\n"  # a bad id on line 2


def scrape(running: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{running.http.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_the_server_did(start_server: Callable[..., Any]) -> None:
    running = start_server()
    before = scrape(running)
    with connect(running) as conn:
        execute(conn, "CREATE TABLE m (id INTEGER, name VARCHAR)")
        assert query(conn, "SELECT 1 AS one") == [{"one": 1}]
        assert query(conn, "SELECT 2 AS two") == [{"two": 2}]
        with pytest.raises(dbapi.Error, match="Function read_csv is not allowed"), conn.cursor() as cur:
            cur.execute("SELECT * FROM read_csv('/etc/passwd')")
        put(conn, "@~/in/good.csv", b"1,a\n2,b\n")
        put(conn, "@~/in/bad.csv", BAD_CSV)
        rows = query(conn, "COPY INTO m FROM @~/in/ FILE_FORMAT = (TYPE = CSV) ON_ERROR = CONTINUE")
        assert sorted((r["Rows_loaded"], r["Errors_seen"]) for r in rows) == [(2, 0), (2, 1)]
        [unload] = query(conn, "COPY INTO @~/out/ FROM m FILE_FORMAT = (TYPE = CSV)")
        assert unload["rows_unloaded"] == 4
        with conn.cursor() as cur:
            assert (
                cur.adbc_ingest("m", pa.table({"id": [7, 8, 9], "name": ["x", "y", "z"]}), mode="append") == 3
            )
        download = presign(conn, "PRESIGN @~/in/good.csv")["url"]
        assert http_status(download) == 200
        assert http_status(download + "tampered") == 403
        with pytest.raises(dbapi.Error, match="(?i)invalid username or password|unauthenticated"):
            with connect(running, password="wrong-password") as bad, bad.cursor() as cur:
                cur.execute("SELECT 1")
        after = scrape(running)
        assert value(after, "stageflight_sessions") >= 1
        assert value(after, "stageflight_duckdb_memory_bytes", tag="base_table") >= 0
        assert any(name == "stageflight_duckdb_memory_bytes" for name, _ in after)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("stageflight_statements_total", kind="select", outcome="ok") == 2
    assert moved("stageflight_statements_total", kind="select", outcome="error") == 1
    assert moved("stageflight_statements_total", kind="create", outcome="ok") == 1
    assert moved("stageflight_statements_total", kind="copy", outcome="ok") == 2
    assert moved("stageflight_statements_total", kind="presign", outcome="ok") == 3
    assert moved("stageflight_statement_duration_seconds_count", kind="select") == 3
    assert moved("stageflight_copy_files_total", outcome="loaded") == 1
    assert moved("stageflight_copy_files_total", outcome="error") == 1
    assert moved("stageflight_copy_rows_total") == 4
    assert moved("stageflight_copy_errors_total") == 1
    assert moved("stageflight_unload_rows_total") == 4
    assert moved("stageflight_unload_bytes_total") == unload["output_bytes"] > 0
    assert moved("stageflight_ingest_rows_total") == 3
    assert moved("stageflight_ingest_bytes_total") > 0
    assert moved("stageflight_http_requests_total", route="presign", status="200") == 3  # 2 PUTs, 1 GET
    assert moved("stageflight_http_requests_total", route="presign", status="403") == 1
    assert moved("stageflight_http_requests_total", route="metrics", status="200") == 1
    assert moved("stageflight_failed_logins_total") == 1


def test_denied_and_streaming(start_server: Callable[..., Any]) -> None:
    running = start_server()
    with connect(running) as root:
        execute(root, "CREATE TABLE secret (a INTEGER)")
        execute(root, "CREATE USER eve IDENTIFIED BY 'eve-password-1'")
        with connect(running, "eve", "eve-password-1") as eve:
            with pytest.raises(dbapi.Error, match="Permission denied: SELECT"), eve.cursor() as cur:
                cur.execute("SELECT * FROM secret")
        samples = scrape(running)
        assert value(samples, "stageflight_statements_total", kind="select", outcome="denied") == 1
        assert value(samples, "stageflight_streaming_results") == 0
