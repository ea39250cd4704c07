"""Flight SQL metadata commands (GetSqlInfo, GetTables, ...): their schemas and their answers."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
from google.protobuf.message import Message

from engine import Engine, caller_visibility, metadata
from flight import commands as cmd
from flight import sqlinfo
from flight.errors import ClientError
from flight.sessions import FlightSession

SERVER_VERSION = "0.1.0"

# Metadata commands whose answer is filtered to what the caller may see.
_FILTERED = {
    f"CommandGet{n}" for n in "DbSchemas Tables PrimaryKeys ImportedKeys ExportedKeys CrossReference".split()
}


def metadata_schema(message: Message) -> pa.Schema:
    name = cmd.type_name(message)
    if name == "CommandGetTables":
        with_schema = message.include_schema
        return metadata.TABLES_WITH_SCHEMA_SCHEMA if with_schema else metadata.TABLES_SCHEMA
    schemas = {
        "CommandGetSqlInfo": sqlinfo.SQLINFO_SCHEMA,
        "CommandGetCatalogs": metadata.CATALOGS_SCHEMA,
        "CommandGetDbSchemas": metadata.DB_SCHEMAS_SCHEMA,
        "CommandGetTableTypes": metadata.TABLE_TYPES_SCHEMA,
        "CommandGetPrimaryKeys": metadata.PRIMARY_KEYS_SCHEMA,
        "CommandGetImportedKeys": metadata.FOREIGN_KEYS_SCHEMA,
        "CommandGetExportedKeys": metadata.FOREIGN_KEYS_SCHEMA,
        "CommandGetCrossReference": metadata.FOREIGN_KEYS_SCHEMA,
        "CommandGetXdbcTypeInfo": metadata.XDBC_TYPE_INFO_SCHEMA,
    }
    if name not in schemas:
        raise ClientError(f"Unsupported Flight SQL command: {name}")
    return schemas[name]


def metadata_table(engine: Engine, message: Message, fs: FlightSession) -> pa.Table:
    m: Any = message
    name = cmd.type_name(message)

    def opt(field: str) -> str | None:
        return getattr(m, field) if m.HasField(field) else None

    if name == "CommandGetSqlInfo":
        return sqlinfo.sql_info_table(
            list(m.info),
            server_version=SERVER_VERSION,
            arrow_version=pa.__version__,
            duckdb_version=str(duckdb.__version__),
        )
    with engine.metadata_cursor() as con:
        # Only what the caller may see (its user and roles; engine/statements/visibility.py).
        visible = caller_visibility(fs.engine_session, con) if name in _FILTERED else metadata.Visible()
        if name == "CommandGetCatalogs":
            return metadata.get_catalogs(con)
        if name == "CommandGetDbSchemas":
            pattern = opt("db_schema_filter_pattern")
            return metadata.get_db_schemas(con, opt("catalog"), pattern, visible=visible)
        if name == "CommandGetTables":
            return metadata.get_tables(
                con,
                opt("catalog"),
                opt("db_schema_filter_pattern"),
                opt("table_name_filter_pattern"),
                list(m.table_types),
                m.include_schema,
                visible=visible,
            )
        if name == "CommandGetTableTypes":
            return metadata.get_table_types(con)
        if name == "CommandGetPrimaryKeys":
            return metadata.get_primary_keys(con, opt("catalog"), opt("db_schema"), m.table, visible=visible)
        if name == "CommandGetImportedKeys":
            return metadata.get_imported_keys(con, opt("catalog"), opt("db_schema"), m.table, visible=visible)
        if name == "CommandGetExportedKeys":
            return metadata.get_exported_keys(con, opt("catalog"), opt("db_schema"), m.table, visible=visible)
        if name == "CommandGetCrossReference":
            return metadata.get_cross_reference(
                con,
                opt("pk_catalog"),
                opt("pk_db_schema"),
                m.pk_table,
                opt("fk_catalog"),
                opt("fk_db_schema"),
                m.fk_table,
                visible=visible,
            )
        if name == "CommandGetXdbcTypeInfo":
            data_type = m.data_type if m.HasField("data_type") else None
            return metadata.get_xdbc_type_info(con, data_type)
    raise ClientError(f"Unsupported Flight SQL command: {name}")
