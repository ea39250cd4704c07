"""Load history keys: one history per table, by schema and name (DuckDB names are case-insensitive)."""

from __future__ import annotations


def history_table_key(schema: str, table: str) -> str:
    return f"{schema}.{table}".lower()
