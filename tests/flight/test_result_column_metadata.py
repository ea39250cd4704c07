"""Issue 16 item 4: result fields carry Flight SQL column metadata (type name, precision, scale,
and the table for a plain one-table SELECT), in dataset_schema, the FlightInfo and DoGet's stream."""

from __future__ import annotations

import pyarrow as pa

from tests.conftest import ROOT_PASSWORD
from tests.flight.rawclient import RawClient

M = "ARROW:FLIGHT:SQL:"


def _meta(field: pa.Field) -> dict[str, str]:
    return {k.decode().removeprefix(M): v.decode() for k, v in (field.metadata or {}).items()}


def test_decimal_and_table_names_everywhere(server, unique_table) -> None:
    table = unique_table("meta")
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    try:
        raw.update(f"CREATE TABLE {table} (d DECIMAL(18,3), s VARCHAR, i INTEGER)")
        raw.update(f"INSERT INTO {table} VALUES (1.5, 'x', 7)")
        prepared = raw.prepare(f"SELECT d, s, i FROM {table}")
        dataset = pa.ipc.read_schema(pa.py_buffer(prepared.dataset_schema))
        from flight import commands as cmd

        info = raw.info(cmd.CommandStatementQuery(query=f"SELECT d, s, i FROM {table} WHERE i > 0"))
        got = raw.fetch(info)
        for schema in (dataset, info.schema, got.schema):
            d, s, i = (_meta(f) for f in schema)
            assert (d["TYPE_NAME"], d["PRECISION"], d["SCALE"]) == ("DECIMAL", "18", "3")
            assert s["TYPE_NAME"] == "VARCHAR" and i["TYPE_NAME"] == "INTEGER"
            assert (d["TABLE_NAME"], d["SCHEMA_NAME"], d["CATALOG_NAME"]) == (
                table,
                "main",
                d["CATALOG_NAME"],
            )
            assert s["TABLE_NAME"] == table
        assert got.to_pylist() == [{"d": got.column(0)[0].as_py(), "s": "x", "i": 7}]
        # An expression has no table; a join neither.
        other = raw.query(f"SELECT d + 1 AS e, 1 AS one FROM {table}")
        e, one = (_meta(f) for f in other.schema)
        assert "TABLE_NAME" not in e and (e["TYPE_NAME"], one["TYPE_NAME"]) == ("DECIMAL", "INTEGER")
        plain = raw.query("SELECT 1 AS x")
        assert _meta(plain.schema.field("x")) == {"TYPE_NAME": "INTEGER", "PRECISION": "10", "SCALE": "0"}
    finally:
        raw.update(f"DROP TABLE IF EXISTS {table}")
        raw.close()
