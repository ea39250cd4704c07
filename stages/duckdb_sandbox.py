"""DuckDB instances locked down: external access off, configuration locked (security.md §1.2, §2(b)).

Every DuckDB the server opens goes through :func:`open_locked`: the main database, the security
database and the confined Parquet reader.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

Setting = str | bool | int | float | list[str]

# security.md §1.2: no extension loading or installing, no persistent or unredacted secrets,
# no Python replacement scans.
_LOCKED_SETTINGS: dict[str, Setting] = {
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_persistent_secrets": False,
    "allow_unredacted_secrets": False,
    "python_enable_replacements": False,
}


def open_locked(
    database: str, settings: Mapping[str, Setting] | None = None, allowed_directory: str | None = None
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB instance with external access off and its configuration locked.

    ``allowed_directory`` is the only host directory SQL on it may reach (DuckDB adds its own
    database, WAL and temp files); it can only be set before access is switched off.
    """
    con = duckdb.connect(database, config={**_LOCKED_SETTINGS, **(settings or {})})
    if allowed_directory is not None:
        con.execute(f"SET allowed_directories = ['{allowed_directory.replace(chr(39), chr(39) * 2)}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con
