"""What an operator watches, in Prometheus exposition format on the HTTP side's ``/metrics``.

One :class:`ServerMetrics` (and so one ``CollectorRegistry``) per server: tests start several
servers in one process, and the default global registry would mix them. Counting happens once per
statement, per HTTP request, per login and per result table, never per row or batch. Gauges that
describe the present (sessions, streaming results, DuckDB memory) are read at scrape time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from engine import PermissionDenied, QueryCancelled, Result

log = logging.getLogger(__name__)
T = TypeVar("T")

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Statement latencies: from a millisecond lookup to a long COPY.
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
# Statement kinds are the first word; anything else is "other", so a label never holds user text.
_KINDS = frozenset(
    "SELECT WITH VALUES FROM INSERT UPDATE DELETE MERGE TRUNCATE CREATE DROP ALTER DESCRIBE SHOW "
    "EXPLAIN BEGIN START COMMIT ROLLBACK ABORT END COPY PUT GET LIST REMOVE RM LS GRANT REVOKE SET "
    "USE VACUUM PRESIGN KILL".split()
)


def statement_kind(sql: str) -> str:
    words = sql.lstrip(" \t\r\n(").split(None, 1)
    word = words[0].upper().rstrip(";(") if words else ""
    return word.lower() if word in _KINDS else "other"


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, QueryCancelled):
        return "cancelled"
    if isinstance(exc, PermissionDenied):
        return "denied"
    return "error"


class _Present(Collector):
    """Gauges read when scraped: sessions, streaming results, DuckDB memory by tag."""

    def __init__(
        self,
        sessions: Callable[[], int],
        streams: Callable[[], int],
        duckdb_memory: Callable[[], list[tuple[str, int, int]]],
    ) -> None:
        self._sessions = sessions
        self._streams = streams
        self._duckdb_memory = duckdb_memory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("stageflight_sessions", "Open Flight SQL sessions", value=self._sessions())
        yield GaugeMetricFamily(
            "stageflight_streaming_results", "Results being streamed to clients", value=self._streams()
        )
        memory = GaugeMetricFamily("stageflight_duckdb_memory_bytes", "DuckDB memory in use", labels=["tag"])
        temp = GaugeMetricFamily(
            "stageflight_duckdb_temporary_storage_bytes", "DuckDB spill to disk", labels=["tag"]
        )
        try:
            rows = self._duckdb_memory()
        except Exception as exc:  # a scrape is its own boundary (a closing database has no rows)
            log.debug("duckdb_memory() unavailable: %s", exc)
            rows = []
        for tag, used, spilled in rows:
            memory.add_metric([tag.lower()], used)
            temp.add_metric([tag.lower()], spilled)
        yield memory
        yield temp


class ServerMetrics:
    def __init__(
        self,
        sessions: Callable[[], int] | None = None,
        streams: Callable[[], int] | None = None,
        cursor: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> None:
        """Without a server's ``sessions``, ``streams`` and DuckDB ``cursor``, only the counters."""

        def duckdb_memory() -> list[tuple[str, int, int]]:
            assert cursor is not None
            with cursor() as cur:
                rows = cur.execute(
                    "SELECT tag, memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory()"
                ).fetchall()
            return [(str(t), int(m), int(d)) for t, m, d in rows]

        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.statements = Counter(
            "stageflight_statements", "Statements run, by kind and outcome", ["kind", "outcome"], registry=reg
        )
        self.latency = Histogram(
            "stageflight_statement_duration_seconds",
            "Statement run time (to the first result, streaming not included)",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.copy_files = Counter(
            "stageflight_copy_files", "Files COPY INTO <table> read, by outcome", ["outcome"], registry=reg
        )
        self.copy_rows = Counter("stageflight_copy_rows", "Rows COPY INTO <table> loaded", registry=reg)
        self.copy_bytes = Counter(
            "stageflight_copy_bytes",
            "Bytes of staged files COPY INTO <table> read, by file format",
            ["format"],
            registry=reg,
        )
        self.copy_errors = Counter("stageflight_copy_errors", "Errors COPY INTO <table> saw", registry=reg)
        self.unload_rows = Counter("stageflight_unload_rows", "Rows COPY INTO @stage wrote", registry=reg)
        self.unload_bytes = Counter(
            "stageflight_unload_bytes", "Bytes of files COPY INTO @stage wrote", registry=reg
        )
        self.ingest_rows = Counter(
            "stageflight_ingest_rows", "Rows bulk-ingested (adbc_ingest)", registry=reg
        )
        self.ingest_bytes = Counter(
            "stageflight_ingest_bytes", "Arrow bytes bulk-ingested (adbc_ingest)", registry=reg
        )
        self.http_requests = Counter(
            "stageflight_http_requests",
            "HTTP requests, by route and status",
            ["route", "status"],
            registry=reg,
        )
        self.failed_logins = Counter(
            "stageflight_failed_logins", "Logins refused (wrong credentials)", registry=reg
        )
        if sessions is not None and streams is not None and cursor is not None:
            reg.register(_Present(sessions, streams, duckdb_memory))

    def page(self) -> bytes:
        return generate_latest(self.registry)

    @contextmanager
    def statement(self, sql: str | None, *, failures_only: bool = False) -> Iterator[None]:
        """Count one statement run by kind and outcome, and time it (nothing without ``sql``);
        ``failures_only`` for a prepare, whose executions are counted when they run."""
        if sql is None:
            yield
            return
        kind = statement_kind(sql)
        start = time.perf_counter()
        outcome = "ok"
        try:
            yield
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            if outcome != "ok" or not failures_only:
                self.latency.labels(kind).observe(time.perf_counter() - start)
                self.statements.labels(kind, outcome).inc()

    def tally(self, sql: str | None, answer: T) -> T:
        """``answer``, after counting COPY's answer table: per-file rows for a load, totals (or
        one row per file) for an unload."""
        table = answer.table if isinstance(answer, Result) else None
        if sql is None or table is None or statement_kind(sql) != "copy":
            return answer
        if isinstance(answer, Result) and answer.copy_read is not None:
            fmt, read = answer.copy_read
            self.copy_bytes.labels(fmt.lower()).inc(read)
        if table.num_rows == 0:
            return answer
        names = set(table.column_names)
        if {"Rows_loaded", "Errors_seen"} <= names:
            errors = table.column("Errors_seen")
            failed = int(pc.sum(pc.greater(errors, 0)).as_py() or 0)
            self.copy_files.labels("loaded").inc(table.num_rows - failed)
            self.copy_files.labels("error").inc(failed)
            self.copy_rows.inc(_total(table, "Rows_loaded"))
            self.copy_errors.inc(_total(table, "Errors_seen"))
        elif {"rows_unloaded", "output_bytes"} <= names:
            self.unload_rows.inc(_total(table, "rows_unloaded"))
            self.unload_bytes.inc(_total(table, "output_bytes"))
        elif {"row_count", "file_size"} <= names:
            self.unload_rows.inc(_total(table, "row_count"))
            self.unload_bytes.inc(_total(table, "file_size"))
        return answer

    def counted_ingest(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        """The same stream, its rows and bytes counted per batch as the engine reads it."""

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                self.ingest_rows.inc(batch.num_rows)
                self.ingest_bytes.inc(batch.nbytes)
                yield batch

        return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _total(table: pa.Table, column: str) -> int:
    value: Any = pc.sum(table.column(column)).as_py()
    return int(value or 0)
