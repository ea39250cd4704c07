"""Fixtures for the scale-out tests: one throwaway PostgreSQL cluster per session, a schema per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.pg import PgCluster, missing_reason, remove_cluster, start_cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(f"no PostgreSQL for the scale-out tests: {reason}")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        remove_cluster(cluster)


@pytest.fixture
def pg_url(pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A --catalog URL naming a fresh schema; PGPASSWORD is set for this process and its children."""
    monkeypatch.setenv("PGPASSWORD", pg_cluster.role_password)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    schema = pg_cluster.new_schema()
    try:
        yield pg_cluster.url(schema)
    finally:
        pg_cluster.drop_schema(schema)


def attach_bare_lake(con: duckdb.DuckDBPyConnection, pg_cluster: PgCluster, schema: str, base: Path) -> None:
    """Attach the lake of catalog ``schema`` (data under ``base/shared``) on a bare DuckDB, as a node
    does before it locks its instance: for tests that shape or read a lake without a server."""
    from engine.catalog.advisory_locks import AdvisoryLocks
    from engine.catalog.lake import attach_lake, lake_data_path
    from engine.config import CatalogUrl

    url = CatalogUrl.parse(pg_cluster.url(schema))
    locks = AdvisoryLocks(url)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PGPASSWORD", pg_cluster.role_password)
            attach_lake(con, url, lake_data_path(str(base / "shared")), base / "extensions", locks)
    finally:
        locks.close()
