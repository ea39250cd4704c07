"""What the engine needs to know, handed down by the entry point (never read from the environment here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


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
