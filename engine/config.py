"""What the engine needs to know, handed down by the entry point (never read from the environment here)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_CATALOG_SCHEMA = "stageflight"
_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class CatalogUrl:
    host: str
    port: int
    dbname: str
    user: str
    schema: str

    @classmethod
    def parse(cls, url: str) -> CatalogUrl:
        """``postgresql://user@host:port/db?schema=name``; a password in the URL is refused."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"--catalog must be a postgresql:// URL, got scheme {parts.scheme or '(none)'!r}"
            )
        if parts.password is not None:
            raise ValueError(
                "--catalog must not contain a password: set PGPASSWORD or use a pgpass file (PGPASSFILE)"
            )
        try:
            port = parts.port or 5432
        except ValueError:
            raise ValueError("--catalog has an invalid port") from None
        dbname = unquote(parts.path.lstrip("/"))
        if not parts.hostname or not parts.username or not dbname:
            raise ValueError("--catalog needs a user, host and database: postgresql://user@host:port/db")
        query = parse_qs(parts.query)
        unknown = set(query) - {"schema"}
        if unknown:
            raise ValueError(
                f"--catalog has unknown parameter(s): {', '.join(sorted(unknown))} (only schema)"
            )
        schema = query.get("schema", [DEFAULT_CATALOG_SCHEMA])[-1]
        if not _SCHEMA_RE.match(schema):
            raise ValueError(f"--catalog schema {schema!r} must be letters, digits and '_'")
        return cls(parts.hostname, port, dbname, unquote(parts.username), schema)

    def describe(self) -> str:
        """For logs and banners: everything but a password (there is none in it)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}?schema={self.schema}"


@dataclass(frozen=True)
class EngineConfig:
    data_dir: Path
    threads: int | None = None
    memory_limit: str | None = None
    batch_rows: int = 131_072
    # A result that fits in this many bytes is read completely in GetFlightInfo, freeing the
    # session's DuckDB connection at once; larger results stream from it during DoGet.
    read_ahead_bytes: int = 8 << 20
    busy_wait_seconds: float = 10.0
    storage_root: str | None = None
    storage_options: Mapping[str, str] = field(default_factory=dict, repr=False)
    allowed_endpoints: tuple[str, ...] = ()
    load_history_retention_days: int = 64
    user_stage_retention_days: int | None = None
    # The key that encrypts external stages' credentials; kept apart from the database files
    # (default <data_dir>/server.key, created on first start).
    server_key_file: Path | None = None
    # postgresql://user@host:port/db?schema=name: users, roles and grants live there, shared by
    # every server given the same URL (issue 14). None: <data_dir>/security.duckdb.
    catalog_url: str | None = None
    # With catalog_url: tables (and the reserved schema: stages, load history) live in a DuckLake
    # whose metadata is in that PostgreSQL database and whose files are under <stage_root>/lake/,
    # so every node given the same settings serves the same tables (engine.catalog.lake).
    lake_tables: bool = False

    def __post_init__(self) -> None:
        if self.catalog_url is not None:
            CatalogUrl.parse(self.catalog_url)  # a clear error at start-up, not at first use
        elif self.lake_tables:
            raise ValueError("Lake tables need --catalog postgresql://...: the lake's metadata lives there")

    @property
    def database_path(self) -> Path:
        return self.data_dir / "stageflight.duckdb"

    @property
    def security_database_path(self) -> Path:
        """Password hashes, grants and URL generations: never attached to the user-facing instance."""
        return self.data_dir / "security.duckdb"

    @property
    def server_key_path(self) -> Path:
        return self.server_key_file or self.data_dir / "server.key"

    @property
    def temp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def stage_root(self) -> str:
        return self.storage_root or str(self.data_dir / "storage")
