"""Metadata RPCs through the real ADBC driver and raw Flight SQL commands."""

from __future__ import annotations

import pyarrow as pa

from engine import metadata
from flight import commands as cmd
from flight import sqlinfo
from tests.conftest import ROOT_PASSWORD
from tests.flight.rawclient import RawClient


def test_adbc_get_info(root_conn):
    info = root_conn.adbc_get_info()
    assert info["vendor_name"] == "stageflight"
    assert info["vendor_version"]
    assert info["vendor_arrow_version"] == pa.__version__


def test_get_table_types(root_conn):
    types = root_conn.adbc_get_table_types()
    assert set(types) >= {"TABLE", "VIEW"}


def test_get_objects_lists_tables_and_columns(root_conn, unique_table):
    t = unique_table("meta")
    with root_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (id INTEGER NOT NULL, label VARCHAR)")
        cur.execute(f"CREATE VIEW {t}_v AS SELECT id FROM {t}")
    objects = root_conn.adbc_get_objects(depth="all", table_name_filter=f"{t}%").read_all().to_pylist()
    [catalog] = [c for c in objects if c["catalog_name"] == "stageflight"]
    [main] = [s for s in catalog["catalog_db_schemas"] if s["db_schema_name"] == "main"]
    tables = {tb["table_name"]: tb for tb in main["db_schema_tables"]}
    assert set(tables) == {t, f"{t}_v"}
    assert tables[t]["table_type"] == "TABLE"
    assert tables[f"{t}_v"]["table_type"] == "VIEW"
    assert [c["column_name"] for c in tables[t]["table_columns"]] == ["id", "label"]


def test_get_objects_hides_catalog_schema(root_conn):
    objects = root_conn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
    schemas = {s["db_schema_name"] for c in objects for s in (c["catalog_db_schemas"] or [])}
    assert "main" in schemas
    assert not any(s.startswith("__stageflight") for s in schemas)


def test_get_table_schema_exact_types_and_nullability(root_conn, unique_table):
    t = unique_table("sch")
    with root_conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (id BIGINT NOT NULL, price DECIMAL(10, 2), at TIMESTAMP)")
    schema = root_conn.adbc_get_table_schema(t)
    assert schema.names == ["id", "price", "at"]
    assert schema.field("id").type == pa.int64() and not schema.field("id").nullable
    assert schema.field("price").type == pa.decimal128(10, 2)
    assert schema.field("at").nullable


def test_raw_metadata_schemas_match_the_spec(server):
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    cases = [
        (cmd.CommandGetCatalogs(), metadata.CATALOGS_SCHEMA),
        (cmd.CommandGetDbSchemas(), metadata.DB_SCHEMAS_SCHEMA),
        (cmd.CommandGetTables(), metadata.TABLES_SCHEMA),
        (cmd.CommandGetTables(include_schema=True), metadata.TABLES_WITH_SCHEMA_SCHEMA),
        (cmd.CommandGetTableTypes(), metadata.TABLE_TYPES_SCHEMA),
        (cmd.CommandGetXdbcTypeInfo(), metadata.XDBC_TYPE_INFO_SCHEMA),
        (cmd.CommandGetSqlInfo(), sqlinfo.SQLINFO_SCHEMA),
    ]
    for message, expected in cases:
        info = raw.info(message)
        assert info.schema.equals(expected), type(message).__name__
        assert raw.fetch(info).schema.equals(expected), type(message).__name__
    raw.close()


def test_primary_and_foreign_keys(server, unique_table):
    parent, child = unique_table("parent"), unique_table("child")
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    raw.update(f"CREATE TABLE {parent} (id INTEGER PRIMARY KEY, name VARCHAR)")
    raw.update(f"CREATE TABLE {child} (id INTEGER, parent_id INTEGER REFERENCES {parent}(id))")
    pks = raw.fetch(raw.info(cmd.CommandGetPrimaryKeys(table=parent))).to_pylist()
    assert [(r["column_name"], r["key_sequence"]) for r in pks] == [("id", 1)]
    imported = raw.fetch(raw.info(cmd.CommandGetImportedKeys(table=child))).to_pylist()
    assert [(r["pk_table_name"], r["pk_column_name"], r["fk_column_name"]) for r in imported] == [
        (parent, "id", "parent_id")
    ]
    exported = raw.fetch(raw.info(cmd.CommandGetExportedKeys(table=parent))).to_pylist()
    assert [r["fk_table_name"] for r in exported] == [child]
    cross = raw.fetch(raw.info(cmd.CommandGetCrossReference(pk_table=parent, fk_table=child))).to_pylist()
    assert len(cross) == 1
    raw.close()


def test_sql_info_transactions_in_int32_slot(server):
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    table = raw.fetch(raw.info(cmd.CommandGetSqlInfo(info=[8, 504])))
    values = dict(zip(table["info_name"].to_pylist(), table["value"].to_pylist(), strict=True))
    assert values == {8: 1, 504: '"'}
    assert table["value"].chunk(0).type_codes.to_pylist()[0] == 3
    raw.close()


def test_xdbc_type_info_filter(server):
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    rows = raw.fetch(raw.info(cmd.CommandGetXdbcTypeInfo(data_type=12))).to_pylist()
    assert [r["type_name"] for r in rows] == ["VARCHAR"]
    raw.close()


def test_get_flight_info_ticket_round_trips_for_metadata(server):
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    info = raw.info(cmd.CommandGetTableTypes())
    first = raw.fetch(info)
    second = raw.fetch(info)  # metadata tickets are stateless: fetch twice
    assert first.equals(second)
    raw.close()
