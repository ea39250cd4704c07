"""Server configuration, read once at the entry point: flags > environment > config file > defaults."""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine import EngineConfig

ENV_PREFIX = "STAGEFLIGHT_"
DEFAULT_PORT = 31337
DEFAULT_HTTP_PORT = 31338


def restricted_cpus() -> int | None:
    """How many CPUs this process may run on, when fewer than the machine has (taskset, a cpuset).

    DuckDB sizes its thread pool by the machine's CPUs whatever the process's affinity, and threads
    beyond the cores it may use only cost: on one pinned core, DuckDB's default 2 threads made a
    5M-row ``SELECT *`` take 1.3-1.4x as long as ``--threads 1``. pyarrow already counts the affinity.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity to read (not Linux)
        return None
    return usable if usable < (os.cpu_count() or usable) else None


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path = Path("stageflight-data")
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    http_port: int = DEFAULT_HTTP_PORT
    tls_cert: Path | None = None
    tls_key: Path | None = None
    root_password: str | None = field(default=None, repr=False)
    token_ttl_seconds: int = 3600
    token_max_lifetime_seconds: int | None = None
    session_idle_seconds: int = 3600
    unused_session_seconds: int = 60
    result_ttl_seconds: int = 300
    max_sessions: int = 512
    max_sessions_per_user: int | None = None
    max_unread_results_per_user: int = 16
    login_failures: int = 5
    login_failure_window_seconds: int = 300
    login_backoff_seconds: int = 1
    login_backoff_max_seconds: int = 30
    concurrent_password_checks: int = 2
    threads: int | None = None
    memory_limit: str | None = None
    user_stage_retention_days: int | None = None
    load_history_retention_days: int = 64
    public_url: str | None = None
    storage_root: str | None = None
    storage_endpoint: str | None = None
    storage_access_key_id: str | None = field(default=None, repr=False)
    storage_secret_access_key: str | None = field(default=None, repr=False)
    storage_region: str | None = None
    allowed_endpoints: str | None = None
    server_key_file: Path | None = None
    catalog: str | None = None
    tables: str = "local"

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def storage_options(self) -> dict[str, str]:
        pairs = {
            "ENDPOINT_URL": self.storage_endpoint,
            "ACCESS_KEY_ID": self.storage_access_key_id,
            "SECRET_ACCESS_KEY": self.storage_secret_access_key,
            "REGION": self.storage_region,
        }
        return {k: v for k, v in pairs.items() if v}

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            data_dir=self.data_dir,
            threads=self.threads or restricted_cpus(),
            memory_limit=self.memory_limit,
            user_stage_retention_days=self.user_stage_retention_days,
            load_history_retention_days=self.load_history_retention_days,
            storage_root=self.storage_root,
            storage_options=self.storage_options(),
            allowed_endpoints=tuple(
                e.strip() for e in (self.allowed_endpoints or "").split(",") if e.strip()
            ),
            server_key_file=self.server_key_file,
            catalog_url=self.catalog,
            lake_tables=self._lake_tables(),
        )

    def _lake_tables(self) -> bool:
        if self.tables not in ("local", "lake"):
            raise SystemExit(f"stageflight: tables must be local or lake, got {self.tables!r}")
        if self.tables == "lake" and self.catalog is None:
            raise SystemExit("stageflight: --tables lake needs --catalog postgresql://... (its metadata)")
        return self.tables == "lake"


# name -> (flag help, converter). Every ServerConfig field but root_password is a flag.
_HELP: dict[str, str] = {
    "data_dir": "directory for the DuckDB file and stage storage",
    "host": "address to listen on",
    "port": "Flight SQL (gRPC) port; 0 picks a free port",
    "http_port": "HTTP port for presigned URLs, /health and /metrics; 0 picks a free port, -1 disables",
    "tls_cert": "PEM certificate: serve grpc+tls:// (needs --tls-key)",
    "tls_key": "PEM private key for --tls-cert",
    "token_ttl_seconds": "a bearer token expires this many seconds after its last call (never while a "
    "call runs or a result streams)",
    "token_max_lifetime_seconds": "absolute lifetime of a bearer token, enforced only between transactions "
    "(default: none)",
    "session_idle_seconds": "idle time after which a session is closed and rolled back",
    "unused_session_seconds": "idle time after which a session that never ran a statement releases its "
    "connection (it resumes on its next call)",
    "result_ttl_seconds": "time a result waits to be fetched before it is dropped",
    "max_sessions": "maximum number of open sessions",
    "max_sessions_per_user": "maximum open sessions per user, root exempt (default: max(4, max_sessions/4))",
    "max_unread_results_per_user": "results a user may leave waiting to be fetched; past it the oldest "
    "unread one is dropped",
    "login_failures": "wrong passwords for a user before each further attempt waits a backoff delay",
    "login_failure_window_seconds": "time over which a user's wrong passwords are counted",
    "login_backoff_seconds": "first backoff delay after too many wrong passwords; doubles with each "
    "further failure",
    "login_backoff_max_seconds": "longest backoff delay (bounds how long anyone, root too, can be "
    "locked out)",
    "concurrent_password_checks": "password hashes (Argon2id, 19 MiB each) computed at once server-wide",
    "threads": "worker threads of DuckDB, of the COPY Parquet reader and of pyarrow; at 1, COPY "
    "starts no read-ahead thread (default: the CPUs this process may run on)",
    "memory_limit": "DuckDB memory limit, e.g. 4GB",
    "user_stage_retention_days": "delete user-stage files older than this many days (default: keep)",
    "load_history_retention_days": "days a loaded file stays in COPY's load history (as Snowflake)",
    "public_url": "base URL clients use to reach the HTTP port (presigned URLs)",
    "storage_root": "where internal, user and table stages live: a directory or s3://bucket/prefix "
    "(default: <data-dir>/storage)",
    "storage_endpoint": "S3 endpoint URL for --storage-root, e.g. http://127.0.0.1:9000",
    "storage_access_key_id": "S3 access key id for --storage-root",
    "storage_secret_access_key": "S3 secret access key for --storage-root (prefer the environment variable)",
    "storage_region": "S3 region for --storage-root",
    "allowed_endpoints": "comma-separated host:port list external stages may use; loopback and private "
    "addresses are refused unless listed",
    "server_key_file": "file with the key that encrypts external stages' credentials, created on first "
    "start (default: <data-dir>/server.key; keep it apart from backups of the database)",
    "catalog": "postgresql://user@host:port/db?schema=name: keep users, roles and grants in PostgreSQL, "
    "shared by every server given the same URL (password from PGPASSWORD or a pgpass file, never the "
    "URL); default: <data-dir>/security.duckdb",
    "tables": "where tables live: local (this node's DuckDB file) or lake (a DuckLake whose metadata is in "
    "--catalog and whose files are under <storage-root>/lake/, shared by every node given the same "
    "settings; needs pip install 'stageflight[lake]')",
}


def _convert(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(ServerConfig)}[name]
    if value is None or value == "":
        return None
    text = str(kind)
    if "Path" in text:
        return Path(value)
    if text.startswith("int"):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SystemExit(f"stageflight: {name} must be a whole number, got {value!r}") from None
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stageflight serve",
        description="Start the stageflight Flight SQL server. Every option can also be set with the "
        f"environment variable {ENV_PREFIX}<OPTION> (e.g. {ENV_PREFIX}PORT) or in a TOML config file; "
        "flags win over the environment, which wins over the file. The root password comes from "
        f"{ENV_PREFIX}ROOT_PASSWORD, or is generated on the first start and shown once.",
    )
    parser.add_argument("--config", type=Path, help=f"TOML config file (env {ENV_PREFIX}CONFIG)")
    defaults = ServerConfig()
    for f in fields(ServerConfig):
        if f.name == "root_password":
            continue
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        parser.add_argument(
            flag,
            dest=f.name,
            default=None,
            help=f"{_HELP[f.name]} (env {env}; default {getattr(defaults, f.name)})",
        )
    return parser


def load_config(argv: Sequence[str], env: Mapping[str, str]) -> ServerConfig:
    args = build_parser().parse_args(list(argv))
    config_file = args.config or (
        Path(env[f"{ENV_PREFIX}CONFIG"]) if env.get(f"{ENV_PREFIX}CONFIG") else None
    )
    from_file: dict[str, Any] = {}
    if config_file is not None:
        try:
            from_file = tomllib.loads(config_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SystemExit(f"stageflight: cannot read config file {config_file}: {exc}") from None
    values: dict[str, Any] = {}
    known = {f.name for f in fields(ServerConfig)}
    unknown = set(from_file) - known
    if unknown:
        raise SystemExit(f"stageflight: unknown option(s) in {config_file}: {', '.join(sorted(unknown))}")
    for name in known:
        flag_value = getattr(args, name, None)
        env_value = env.get(ENV_PREFIX + name.upper())
        for candidate in (flag_value, env_value, from_file.get(name)):
            if candidate is not None:
                values[name] = _convert(name, candidate)
                break
    config = ServerConfig(**values)
    if (config.tls_cert is None) != (config.tls_key is None):
        raise SystemExit("stageflight: --tls-cert and --tls-key must be given together")
    try:
        config.engine_config()
    except ValueError as exc:  # e.g. a --catalog URL that is not one
        raise SystemExit(f"stageflight: {exc}") from None
    return config
