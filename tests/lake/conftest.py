"""Fixtures for the scale-out tests: one throwaway PostgreSQL cluster per session, a schema per test."""

from __future__ import annotations

from collections.abc import Iterator

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
