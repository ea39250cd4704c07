"""Connections to the PostgreSQL catalog (the lake extra's psycopg), made one way for every user of it:
the security store, the nodes' advisory locks."""

from __future__ import annotations

from typing import Any

from engine.catalog.security_store import CatalogUnavailable
from engine.config import CatalogUrl

# A catalog that does not answer must fail a call, not hang it on the system's TCP timeout.
CONNECT_TIMEOUT_SECONDS = 10


def pg_reason(exc: Exception) -> str:
    """libpq's message, first line only (never carries a password: none is in the conninfo)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def connect_catalog(
    url: CatalogUrl, application_name: str, connect_timeout: int = CONNECT_TIMEOUT_SECONDS
) -> Any:
    """An autocommit connection to the catalog's database, as ``application_name`` in
    pg_stat_activity; libpq reads the password from PGPASSWORD or the pgpass file.

    Raises:
        CatalogUnavailable: PostgreSQL cannot be reached or refuses the login.
    """
    import psycopg  # the lake extra

    try:
        return psycopg.connect(
            host=url.host,
            port=url.port,
            dbname=url.dbname,
            user=url.user,
            connect_timeout=connect_timeout,
            application_name=application_name,
            autocommit=True,
        )
    except psycopg.OperationalError as exc:
        raise CatalogUnavailable(f"Cannot reach the catalog {url.describe()}: {pg_reason(exc)}") from None
