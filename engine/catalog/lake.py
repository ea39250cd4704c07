"""Lake mode (issue 14): the user-facing DuckDB keeps its tables in a DuckLake shared by every node.

The lake's metadata is in the PostgreSQL database ``--catalog`` names (schema ``<schema>_lake``),
its Parquet files under ``<storage root>/lake/``. Each node opens an in-memory DuckDB and, before
locking it (docs/design/catalog-home.md §3, /work/shared/docs/scaleout.md §5.1):

1. loads the ducklake and postgres extensions from their PyPI wheels (DuckDB 1.5.5 only), and
   httpfs with an S3 secret scoped to the data path when the storage root is on S3;
2. creates a postgres secret without a password (libpq reads PGPASSWORD or the pgpass file, so
   the password is in no setting, secret or database path user SQL could list);
3. attaches the lake as ``lake``, under a PostgreSQL advisory lock: two nodes creating a new
   lake at the same moment otherwise race on its schema;
4. sets DuckLake's retry budget, then confines DuckDB to the lake's data path, switches external
   access off and locks the configuration.

Every cursor starts in ``memory``: :func:`use_lake` puts it in the lake.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from engine.catalog.advisory_locks import AdvisoryLocks
from engine.catalog.security_store import CatalogUnavailable
from engine.config import CatalogUrl

LAKE = "lake"
# DuckLake retries a commit whose snapshot id another node took; concurrent appends need more
# than its default 10 with a few busy nodes (duckdb/ducklake#233).
MAX_COMMIT_RETRIES = 100
# Before retry i DuckLake sleeps wait * random(0.5, 1) * backoff**i. Its defaults (100 ms, 1.5) cost
# the loser of two concurrent commits 50-100 ms, and with 100 retries the exponent is unbounded.
# The winner has committed when the loser sees the conflict, so a short constant wait is enough:
# at most 100 x 5 ms asleep in all.
COMMIT_RETRY_WAIT_MS = 5
COMMIT_RETRY_BACKOFF = 1.0
_PRIMARY_KEY = re.compile(r",\s*PRIMARY KEY \([^)]*\)|\s+PRIMARY KEY", re.IGNORECASE)


def lake_data_path(stage_root: str) -> str:
    """Where the lake's Parquet files live: ``lake/`` under the shared storage root."""
    return stage_root.rstrip("/") + "/lake/"


def lake_ddl(ddl: str) -> str:
    """``ddl`` for a DuckLake table: DuckLake has no PRIMARY KEY (callers keep names unique)."""
    return _PRIMARY_KEY.sub("", ddl)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def extension_file(name: str, extensions_dir: Path) -> Path:
    """The extension file the ``duckdb-extension-<name>`` wheel ships for this DuckDB.

    The postgres wheel's file is named ``postgres`` but its entry point is ``postgres_scanner``,
    and DuckDB derives the entry point from the file name: it is copied under that name (copy,
    then rename, so two nodes starting together never load a half-written file).
    """
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    version = duckdb.__version__
    if spec is None or spec.origin is None:
        raise CatalogUnavailable(
            f"Lake mode needs the DuckDB extension {name!r} for DuckDB {version}: "
            "pip install 'stageflight[lake]' (DuckDB 1.5.5 with its ducklake and postgres extensions)"
        )
    found = Path(spec.origin).parent / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
    if not found.is_file():
        raise CatalogUnavailable(
            f"Lake mode needs DuckDB 1.5.5 (the version DuckLake's extension wheels are built for); "
            f"this is DuckDB {version}: pip install 'stageflight[lake]'"
        )
    if name != "postgres":
        return found
    extensions_dir.mkdir(parents=True, exist_ok=True)
    target = extensions_dir / "postgres_scanner.duckdb_extension"
    if not target.exists() or target.stat().st_size != found.stat().st_size:
        partial = extensions_dir / f".postgres_scanner.{os.getpid()}.partial"
        shutil.copyfile(found, partial)
        os.replace(partial, target)
    return target


def s3_secret(data_path: str, options: Mapping[str, str]) -> str:
    """The ``CREATE SECRET`` giving DuckDB (httpfs) the storage root's S3 credentials, scoped to
    the lake's data path. ``options`` are the --storage-* flags (ENDPOINT_URL, ACCESS_KEY_ID,
    SECRET_ACCESS_KEY, REGION); without ENDPOINT_URL DuckDB talks to AWS itself."""
    parts = [
        "TYPE s3",
        f"KEY_ID {_quoted(options.get('ACCESS_KEY_ID', ''))}",
        f"SECRET {_quoted(options.get('SECRET_ACCESS_KEY', ''))}",
        f"REGION {_quoted(options.get('REGION') or 'us-east-1')}",
    ]
    endpoint = options.get("ENDPOINT_URL")
    if endpoint:
        url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if not url.netloc:
            raise CatalogUnavailable(f"Invalid storage endpoint for the lake: {endpoint!r}")
        parts += [
            f"ENDPOINT {_quoted(url.netloc + url.path.rstrip('/'))}",
            "URL_STYLE 'path'",
            f"USE_SSL {'false' if url.scheme == 'http' else 'true'}",
        ]
    parts.append(f"SCOPE {_quoted(data_path)}")
    return f"CREATE SECRET lake_s3 ({', '.join(parts)})"


def attach_lake(
    con: duckdb.DuckDBPyConnection,
    catalog: CatalogUrl,
    data_path: str,
    extensions_dir: Path,
    locks: AdvisoryLocks,
    storage_options: Mapping[str, str] | None = None,
) -> None:
    """Load the extensions and attach the lake on ``con`` (before it is locked)."""
    on_s3 = data_path.startswith("s3://")
    for name in ("ducklake", "postgres", *(("httpfs",) if on_s3 else ())):
        con.execute(f"LOAD {_quoted(str(extension_file(name, extensions_dir)))}")
    if on_s3:
        con.execute(s3_secret(data_path, storage_options or {}))
    con.execute(
        "CREATE SECRET lake_pg (TYPE postgres, "
        f"HOST {_quoted(catalog.host)}, PORT {int(catalog.port)}, "
        f"DATABASE {_quoted(catalog.dbname)}, USER {_quoted(catalog.user)})"
    )
    con.execute(
        "CREATE SECRET lake_cfg (TYPE ducklake, METADATA_PATH '', "
        f"DATA_PATH {_quoted(data_path)}, "
        "METADATA_PARAMETERS MAP {'TYPE': 'postgres', 'SECRET': 'lake_pg'})"
    )
    if not on_s3:
        Path(data_path).mkdir(parents=True, exist_ok=True)
    with locks.hold("lake", "Attaching the lake timed out"):
        try:
            metadata_schema = _quoted(catalog.schema + "_lake")
            con.execute(f"ATTACH 'ducklake:lake_cfg' AS {LAKE} (METADATA_SCHEMA {metadata_schema})")
        except duckdb.Error as exc:
            raise CatalogUnavailable(f"Cannot attach the lake in {catalog.describe()}: {exc}") from None
    con.execute(f"SET ducklake_max_retry_count = {MAX_COMMIT_RETRIES}")
    con.execute(f"SET ducklake_retry_wait_ms = {COMMIT_RETRY_WAIT_MS}")
    con.execute(f"SET ducklake_retry_backoff = {COMMIT_RETRY_BACKOFF}")
    use_lake(con)


def use_lake(cur: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Put a new cursor in the lake (each cursor starts in ``memory``)."""
    cur.execute(f"USE {LAKE}")
    return cur
