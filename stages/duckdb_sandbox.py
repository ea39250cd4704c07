"""DuckDB instances locked down: external access off, configuration locked (security.md §1.2, §2(b)).

Every DuckDB the server opens goes through :func:`open_locked`: the main database, the security
database and the confined Parquet reader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

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
    database: str,
    settings: Mapping[str, Setting] | None = None,
    allowed_directory: str | None = None,
    before_lock: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB instance with external access off and its configuration locked.

    ``allowed_directory`` is the only host directory SQL on it may reach (DuckDB adds its own
    database, WAL and temp files); it can only be set before access is switched off.
    ``before_lock`` runs server SQL that needs the access about to go (LOAD, ATTACH, SET).
    """
    config = {**_LOCKED_SETTINGS, **(settings or {})}
    try:
        con = duckdb.connect(database, config=config)
    except duckdb.Error as e:
        if not _is_unreplayable_wal(e):
            raise
        _replay_wal_attached(database)
        con = duckdb.connect(database, config=config)
    if before_lock is not None:
        try:
            before_lock(con)
        except BaseException:
            con.close()
            raise
    if allowed_directory is not None:
        con.execute(f"SET allowed_directories = ['{allowed_directory.replace(chr(39), chr(39) * 2)}']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _is_unreplayable_wal(error: duckdb.Error) -> bool:
    """DuckDB 1.5's WAL replay fails on an ALTER TABLE of a table with a function DEFAULT (now()).

    Replaying the ALTER re-binds every DEFAULT before the database is the default one, and binding
    ``now()`` then fails ("GetDefaultDatabase with no default database set"): a server killed after
    such an ALTER (our own migrations run one at every first start) could not open its data again.
    """
    text = str(error)
    return "Failure while replaying WAL" in text and "no default database set" in text


def _replay_wal_attached(database: str) -> None:
    """Replay ``database``'s WAL as an attached database (there a default one exists) and checkpoint it.

    The instance is in memory, runs only these statements, and is closed before the real one opens.
    """
    con = duckdb.connect(":memory:", config=dict(_LOCKED_SETTINGS))
    try:
        con.execute(f"ATTACH '{database.replace(chr(39), chr(39) * 2)}' AS recovered")
        con.execute("CHECKPOINT recovered")
        con.execute("DETACH recovered")
    finally:
        con.close()
