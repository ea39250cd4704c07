"""Metadata shows only what the caller may use (issue 13, catalog-home.md §5.5-§5.6), through ADBC.

alice creates a schema and tables; bob, with no grants, sees none of them through GetObjects (every
depth), GetTableSchema, GetPrimaryKeys and the key commands, information_schema / pg_catalog, SHOW
TABLES and DESCRIBE. A GRANT shows him exactly the granted table; a REVOKE hides it again; root
sees everything.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import pytest

from flight import commands as cmd
from flight.app import RunningServer
from tests.conftest import connect
from tests.e2e.stage_helpers import execute, query
from tests.flight.rawclient import RawClient


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


class World:
    """alice's schema ``schema`` with tables ``orders`` (PK) and ``lines`` (FK to orders) in it,
    and her table ``main.payroll``."""

    def __init__(self, root: Any, alice: Any) -> None:
        self.schema, self.payroll = _name("asch"), _name("payroll")
        self.orders, self.lines = _name("orders"), _name("lines")
        execute(root, f"GRANT CREATE ON *.* TO '{alice.user_name}'")
        execute(alice, f"CREATE SCHEMA {self.schema}")
        execute(alice, f"CREATE TABLE {self.schema}.{self.orders} (id INTEGER PRIMARY KEY, total DOUBLE)")
        execute(
            alice,
            f"CREATE TABLE {self.schema}.{self.lines} "
            f"(order_id INTEGER REFERENCES {self.schema}.{self.orders}(id), qty INTEGER)",
        )
        execute(alice, f"CREATE TABLE main.{self.payroll} (emp VARCHAR PRIMARY KEY, salary INTEGER)")

    def names(self) -> set[str]:
        return {self.payroll, self.orders, self.lines}


@pytest.fixture
def world(root_conn: Any, alice: Any) -> World:
    return World(root_conn, alice)


@pytest.fixture
def carol(server: RunningServer, make_user: Callable[[], tuple[str, str]]) -> Iterator[Any]:
    name, password = make_user()
    conn = connect(server, user=name, password=password)
    conn.user_name = name
    yield conn
    conn.close()


def _objects(conn: Any, depth: str = "all") -> tuple[set[str], set[str], dict[str, set[str]]]:
    """(schemas, tables, table -> columns) from ADBC GetObjects."""
    catalogs = conn.adbc_get_objects(depth=depth).read_all().to_pylist()
    schemas, tables, columns = set(), set(), {}
    for catalog in catalogs:
        for schema in catalog["catalog_db_schemas"] or []:
            schemas.add(schema["db_schema_name"])
            for table in schema["db_schema_tables"] or []:
                tables.add(table["table_name"])
                columns[table["table_name"]] = {c["column_name"] for c in table["table_columns"] or []}
    return schemas, tables, columns


def _sql_names(conn: Any, sql: str, column: str) -> set[str]:
    return {row[column] for row in query(conn, sql)}


def test_bob_without_grants_sees_none_of_alices_objects(world: World, alice: Any, bob: Any) -> None:
    schemas, tables, columns = _objects(alice)
    assert world.schema in schemas and world.names() <= tables
    assert columns[world.orders] == {"id", "total"}

    for depth in ("db_schemas", "tables", "columns", "all"):
        schemas, tables, columns = _objects(bob, depth)
        assert world.schema not in schemas, depth
        assert "main" in schemas or depth == "catalogs", depth  # public has USAGE on main
        assert not world.names() & tables, depth
        assert not world.names() & set(columns), depth
    with pytest.raises(dbapi.Error, match="NOT_FOUND: No table found"):
        bob.adbc_get_table_schema(world.payroll, db_schema_filter="main")
    with pytest.raises(dbapi.Error, match="NOT_FOUND: No table found"):
        bob.adbc_get_table_schema(world.orders, db_schema_filter=world.schema)
    assert alice.adbc_get_table_schema(world.payroll, db_schema_filter="main").names == ["emp", "salary"]

    tables_sql = "SELECT table_schema, table_name FROM information_schema.tables"
    assert not world.names() & _sql_names(bob, tables_sql, "table_name")
    assert world.names() <= _sql_names(alice, tables_sql, "table_name")
    columns_sql = "SELECT table_name FROM information_schema.columns"
    assert not world.names() & _sql_names(bob, columns_sql, "table_name")
    schemata = "SELECT schema_name FROM information_schema.schemata"
    assert world.schema not in _sql_names(bob, schemata, "schema_name")
    assert world.schema in _sql_names(alice, schemata, "schema_name")
    constraints = "SELECT table_name FROM information_schema.table_constraints"
    assert not world.names() & _sql_names(bob, constraints, "table_name")
    assert world.payroll in _sql_names(alice, constraints, "table_name")
    assert world.payroll not in _sql_names(bob, "SHOW TABLES", "name")
    assert world.payroll in _sql_names(alice, "SHOW TABLES", "name")
    assert _sql_names(bob, f"SHOW TABLES FROM {world.schema}", "name") == set()
    assert _sql_names(alice, f"SHOW TABLES FROM {world.schema}", "name") == {world.orders, world.lines}
    with pytest.raises(dbapi.Error, match="Permission denied: SELECT"):
        query(bob, f"DESCRIBE {world.payroll}")
    assert {r["column_name"] for r in query(alice, f"DESCRIBE {world.payroll}")} == {"emp", "salary"}


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT table_name FROM "INFORMATION_SCHEMA"."TABLES"',
        "SELECT table_name FROM Information_Schema.Tables",
        'SELECT "table_name" FROM information_schema."columns"',
        "SELECT table_name FROM information_schema.key_column_usage",
        "SELECT tablename AS table_name FROM pg_tables",
        "SELECT tablename AS table_name FROM pg_catalog.pg_indexes",
        "SELECT relname AS table_name FROM pg_class",
        "SELECT c.relname AS table_name FROM pg_catalog.pg_attribute a JOIN pg_class c ON a.attrelid = c.oid",
        "WITH x AS (SELECT * FROM information_schema.tables) SELECT table_name FROM x",
        "SELECT table_name FROM (SELECT * FROM information_schema.tables) AS t",
    ],
)
def test_spellings_of_catalog_views_are_filtered_too(
    world: World, bob: Any, root_conn: Any, sql: str
) -> None:
    assert not world.names() & _sql_names(bob, sql, "table_name")
    if "pg_indexes" not in sql:  # a primary key makes no pg_indexes row
        assert world.payroll in _sql_names(root_conn, sql, "table_name")


def test_pg_catalog_hides_alices_schema_and_constraints(world: World, bob: Any) -> None:
    assert world.schema not in _sql_names(bob, "SELECT nspname FROM pg_namespace", "nspname")
    checks = "SELECT constraint_name FROM information_schema.referential_constraints"
    assert not any(world.lines in name for name in _sql_names(bob, checks, "constraint_name"))


def test_grant_shows_exactly_that_table_and_revoke_hides_it(world: World, alice: Any, bob: Any) -> None:
    execute(alice, f"GRANT SELECT ON main.{world.payroll} TO '{bob.user_name}'")
    _, tables, columns = _objects(bob)
    assert world.names() & tables == {world.payroll}
    assert columns[world.payroll] == {"emp", "salary"}
    assert bob.adbc_get_table_schema(world.payroll, db_schema_filter="main").names == ["emp", "salary"]
    assert world.names() & _sql_names(
        bob, "SELECT table_name FROM information_schema.tables", "table_name"
    ) == {world.payroll}
    assert world.payroll in _sql_names(bob, "SHOW TABLES", "name")
    assert {r["column_name"] for r in query(bob, f"DESCRIBE {world.payroll}")} == {"emp", "salary"}

    execute(alice, f"REVOKE SELECT ON main.{world.payroll} FROM '{bob.user_name}'")
    _, tables, _ = _objects(bob)
    assert not world.names() & tables
    assert world.payroll not in _sql_names(
        bob, "SELECT table_name FROM information_schema.tables", "table_name"
    )
    assert world.payroll not in _sql_names(bob, "SHOW TABLES", "name")


def test_a_prepared_catalog_read_follows_a_revoke(world: World, alice: Any, bob: Any) -> None:
    execute(alice, f"GRANT SELECT ON main.{world.payroll} TO '{bob.user_name}'")
    sql = "SELECT table_name FROM information_schema.tables WHERE table_name = ?"
    with bob.cursor() as cur:
        cur.execute(sql, parameters=(world.payroll,))
        assert cur.fetchall() == [(world.payroll,)]
        execute(alice, f"REVOKE SELECT ON main.{world.payroll} FROM '{bob.user_name}'")
        cur.execute(sql, parameters=(world.payroll,))
        assert cur.fetchall() == []


def test_a_grant_to_a_role_shows_the_table_to_its_holder(
    world: World, root_conn: Any, alice: Any, bob: Any, carol: Any
) -> None:
    role = _name("readers")
    execute(root_conn, f"CREATE ROLE {role}")
    execute(root_conn, f"GRANT ROLE {role} TO '{bob.user_name}'")
    execute(alice, f"GRANT SELECT ON {world.schema}.{world.orders} TO ROLE {role}")
    schemas, tables, _ = _objects(bob)
    assert world.names() & tables == {world.orders}
    assert world.schema in schemas  # a visible table shows its schema
    assert _sql_names(bob, f"SHOW TABLES FROM {world.schema}", "name") == {world.orders}
    _, tables, _ = _objects(carol)  # without the role
    assert not world.names() & tables


def test_keys_only_between_visible_tables(
    server: RunningServer, make_user: Callable[[], tuple[str, str]], root_conn: Any
) -> None:
    (owner, owner_pw), (other, other_pw) = make_user(), make_user()
    parent, child = _name("parent"), _name("child")
    alice, bob = RawClient(server.uri, owner, owner_pw), RawClient(server.uri, other, other_pw)
    try:
        alice.update(f"CREATE TABLE {parent} (id INTEGER PRIMARY KEY)")
        alice.update(f"CREATE TABLE {child} (parent_id INTEGER REFERENCES {parent}(id), n INTEGER)")

        def rows(client: RawClient, message: Any) -> list[dict[str, Any]]:
            return client.fetch(client.info(message)).to_pylist()  # type: ignore[no-any-return]

        def answers(client: RawClient) -> list[int]:
            return [
                len(rows(client, cmd.CommandGetPrimaryKeys(table=parent))),
                len(rows(client, cmd.CommandGetImportedKeys(table=child))),
                len(rows(client, cmd.CommandGetExportedKeys(table=parent))),
                len(rows(client, cmd.CommandGetCrossReference(pk_table=parent, fk_table=child))),
            ]

        assert answers(alice) == [1, 1, 1, 1]
        assert answers(bob) == [0, 0, 0, 0]
        alice.update(f"GRANT SELECT ON {child} TO '{other}'")  # the FK side only
        assert answers(bob) == [0, 0, 0, 0]
        tables = rows(bob, cmd.CommandGetTables(table_name_filter_pattern=f"{child[:-4]}%"))
        assert [r["table_name"] for r in tables] == [child]
        alice.update(f"GRANT SELECT ON {parent} TO '{other}'")
        assert answers(bob) == [1, 1, 1, 1]
    finally:
        alice.close()
        bob.close()


def test_root_sees_everything(world: World, root_conn: Any) -> None:
    schemas, tables, _ = _objects(root_conn)
    assert world.schema in schemas and world.names() <= tables
    assert world.names() <= _sql_names(
        root_conn, "SELECT table_name FROM information_schema.tables", "table_name"
    )
    assert _sql_names(root_conn, f"SHOW TABLES FROM {world.schema}", "name") == {world.orders, world.lines}


def test_catalog_views_read_through_stage_queries_and_unloads_are_filtered(server, alice, bob, unique_table):
    """Stage queries and unloads bind the caller's visibility too (they run their own SQL)."""
    secret = unique_table("hidden")
    with alice.cursor() as cur:
        cur.execute(f"CREATE TABLE {secret} (a INTEGER)")
    with bob.cursor() as cur:
        cur.execute("COPY INTO @~/vis/ FROM (SELECT 1 AS x) FILE_FORMAT = (TYPE = CSV)")
        cur.execute(
            "SELECT t.table_name FROM @~/vis/ (FILE_FORMAT => 'CSV') s "
            "JOIN information_schema.tables t ON true"
        )
        assert secret not in [r[0] for r in cur.fetchall()]
        cur.execute(
            "COPY INTO @~/vis_out/ FROM (SELECT 'marker' AS n UNION ALL "
            "SELECT table_name FROM information_schema.tables) "
            "FILE_FORMAT = (TYPE = CSV)"
        )
        cur.execute("SELECT $1 FROM @~/vis_out/ (FILE_FORMAT => 'CSV')")
        names = [r[0] for r in cur.fetchall()]
        assert "marker" in names and secret not in names
    with alice.cursor() as cur:
        cur.execute(
            "COPY INTO @~/vis_out/ FROM (SELECT 'marker' AS n UNION ALL "
            "SELECT table_name FROM information_schema.tables) "
            "FILE_FORMAT = (TYPE = CSV)"
        )
        cur.execute("SELECT $1 FROM @~/vis_out/ (FILE_FORMAT => 'CSV')")
        assert secret in [r[0] for r in cur.fetchall()]
