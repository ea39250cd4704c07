"""Catalog metadata answers for Flight SQL (GetCatalogs, GetTables, GetPrimaryKeys, ...).

Pure functions over a DuckDB connection: each runs a few catalog queries (``duckdb_*()`` table
functions and ``information_schema``) and returns a ``pyarrow.Table`` with exactly the schema the
Flight SQL spec gives (flight-sql-surface.md §2); the Flight layer only has to send it.

What is listed:

* Catalogs: every attached, non-internal database (the server's database and anything attached
  to it), plus ``temp`` only while the connection has temporary tables or views. ``system`` (DuckDB's
  built-ins: ``information_schema``, ``pg_catalog``) is never listed.
* The server's reserved schema ``__stageflight`` (users, hashes, stages, grants) never appears:
  not as a schema, a table, a column owner, nor on either side of a key.
* Only what the caller may see (``visible``, a :class:`Visible`; engine.statements.visibility
  computes it): tables and views it owns or holds a privilege on, schemas it may use or holds
  such tables in; a foreign key shows only when both its tables do.
* Temporary objects are per DuckDB connection: pass the session's own connection to see them.

Filters follow CommandGet*: ``None`` means "no filter"; ``""`` as a catalog or schema means
"objects without one", which in DuckDB is nothing. Patterns are SQL LIKE (``%``, ``_``) with ``\\``
as escape character (what GetSqlInfo advertises as SQL_SEARCH_STRING_ESCAPE); they are always
bound as parameters.

The connection must have no open (undrained) result: every query here is fetched completely.

The answers live in submodules by concern: :mod:`.schemas` (result schemas), :mod:`.tables`,
:mod:`.keys`, :mod:`.xdbc_types`, and :mod:`.query` (what every catalog query shares); this
package re-exports them as the one API the Flight layer calls.
"""

from __future__ import annotations

from engine.metadata.keys import get_cross_reference, get_exported_keys, get_imported_keys, get_primary_keys
from engine.metadata.query import EVERYTHING, RESERVED_SCHEMA, Visible
from engine.metadata.result_fields import annotated, conformed, is_annotated
from engine.metadata.schemas import (
    CATALOGS_SCHEMA,
    DB_SCHEMAS_SCHEMA,
    FOREIGN_KEYS_SCHEMA,
    PRIMARY_KEYS_SCHEMA,
    TABLE_TYPES_SCHEMA,
    TABLES_SCHEMA,
    TABLES_WITH_SCHEMA_SCHEMA,
    XDBC_TYPE_INFO_SCHEMA,
)
from engine.metadata.tables import TABLE_TYPES, get_catalogs, get_db_schemas, get_table_types, get_tables
from engine.metadata.xdbc_types import get_xdbc_type_info
from engine.names import quote_ident as quote_identifier

__all__ = [
    "CATALOGS_SCHEMA",
    "DB_SCHEMAS_SCHEMA",
    "EVERYTHING",
    "FOREIGN_KEYS_SCHEMA",
    "PRIMARY_KEYS_SCHEMA",
    "RESERVED_SCHEMA",
    "TABLES_SCHEMA",
    "TABLES_WITH_SCHEMA_SCHEMA",
    "TABLE_TYPES",
    "TABLE_TYPES_SCHEMA",
    "XDBC_TYPE_INFO_SCHEMA",
    "Visible",
    "annotated",
    "conformed",
    "is_annotated",
    "get_catalogs",
    "get_cross_reference",
    "get_db_schemas",
    "get_exported_keys",
    "get_imported_keys",
    "get_primary_keys",
    "get_table_types",
    "get_tables",
    "get_xdbc_type_info",
    "quote_identifier",
]
