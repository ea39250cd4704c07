"""Issue 13 enforcement beyond plain SQL, end to end: COPY INTO a table, unloads, adbc_ingest and
table stages, for two users (alice owns the tables, bob is granted, then revoked) and a role.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pytest

from tests.e2e.stage_helpers import execute, put, query

CSV = "FILE_FORMAT = (TYPE = CSV)"


def denied(privilege: str, table: str) -> str:
    return f"Permission denied: {privilege} on main[.]{table}"


@pytest.fixture
def payroll(alice: Any, unique_table: Callable[[str], str]) -> str:
    t = unique_table("payroll")
    execute(alice, f"CREATE TABLE {t} (id INTEGER, name VARCHAR)")
    execute(alice, f"INSERT INTO {t} VALUES (1, 'alice')")
    return t


@pytest.fixture
def role(root_conn: Any) -> Iterator[str]:
    name = f"loader_{uuid.uuid4().hex[:8]}"
    execute(root_conn, f"CREATE ROLE {name}")
    yield name
    execute(root_conn, f"DROP ROLE IF EXISTS {name}")


def _count(conn: Any, table: str) -> int:
    return int(query(conn, f"SELECT count(*) AS n FROM {table}")[0]["n"])


# -- COPY INTO <table> ------------------------------------------------------------------------
def test_copy_into_needs_insert_granted_then_revoked(alice: Any, bob: Any, payroll: str) -> None:
    put(bob, "@~/rows.csv", b"2,bob\n")
    load = f"COPY INTO {payroll} FROM @~/rows.csv {CSV} FORCE = TRUE"
    with pytest.raises(dbapi.Error, match=denied("INSERT", payroll)):
        query(bob, load)
    execute(alice, f"GRANT INSERT ON main.{payroll} TO '{bob.user_name}'")
    assert query(bob, load)[0]["Rows_loaded"] == 1
    assert _count(alice, payroll) == 2
    # INSERT is not SELECT: bob loads but does not read.
    with pytest.raises(dbapi.Error, match=denied("SELECT", payroll)):
        query(bob, f"SELECT * FROM {payroll}")
    execute(alice, f"REVOKE INSERT ON main.{payroll} FROM '{bob.user_name}'")
    with pytest.raises(dbapi.Error, match=denied("INSERT", payroll)):
        query(bob, load)
    assert _count(alice, payroll) == 2


def test_copy_into_is_refused_before_the_stage_is_looked_at(bob: Any, payroll: str) -> None:
    # The stage does not exist; the table's privilege is what bob hears about.
    with pytest.raises(dbapi.Error, match=denied("INSERT", payroll)):
        query(bob, f"COPY INTO {payroll} FROM @no_such_stage_{uuid.uuid4().hex[:6]} {CSV}")


def test_copy_into_through_a_role(root_conn: Any, alice: Any, bob: Any, payroll: str, role: str) -> None:
    put(bob, "@~/rows.csv", b"3,role\n")
    load = f"COPY INTO main.{payroll} FROM @~/rows.csv {CSV} FORCE = TRUE"
    execute(root_conn, f"GRANT INSERT ON main.{payroll} TO ROLE {role}")
    execute(root_conn, f"GRANT ROLE {role} TO '{bob.user_name}'")
    assert query(bob, load)[0]["Rows_loaded"] == 1
    execute(root_conn, f"REVOKE ROLE {role} FROM USER {bob.user_name}")
    with pytest.raises(dbapi.Error, match=denied("INSERT", payroll)):
        query(bob, load)
    assert _count(alice, payroll) == 2


def test_prepared_copy_is_refused_after_revoke(alice: Any, bob: Any, payroll: str) -> None:
    put(bob, "@~/rows.csv", b"4,prepared\n")
    load = f"COPY INTO {payroll} FROM @~/rows.csv {CSV} FORCE = TRUE"
    execute(alice, f"GRANT INSERT ON main.{payroll} TO '{bob.user_name}'")
    with bob.cursor() as cur:
        cur.adbc_prepare(load)
        cur.execute(load)
        assert cur.fetch_arrow_table().to_pylist()[0]["Rows_loaded"] == 1
        execute(alice, f"REVOKE INSERT ON main.{payroll} FROM '{bob.user_name}'")
        with pytest.raises(dbapi.Error, match=denied("INSERT", payroll)):
            cur.execute(load)  # the same prepared statement, executed again
    assert _count(alice, payroll) == 2


def test_copy_transform_cannot_read_a_table_through_a_subquery(alice: Any, bob: Any, payroll: str) -> None:
    mine = f"mine_{uuid.uuid4().hex[:8]}"
    execute(bob, f"CREATE TABLE {mine} (id INTEGER, name VARCHAR)")
    put(bob, "@~/rows.csv", b"5,x\n")
    sneaky = f"COPY INTO {mine} FROM (SELECT $1, (SELECT name FROM {payroll} LIMIT 1) FROM @~/rows.csv) {CSV}"
    with pytest.raises(dbapi.Error, match=denied("SELECT", payroll)):
        query(bob, sneaky)
    assert _count(bob, mine) == 0


# -- unload -----------------------------------------------------------------------------------
def test_unload_from_a_table_needs_select(alice: Any, bob: Any, payroll: str) -> None:
    unload = f"COPY INTO @~/out/ FROM {payroll} {CSV}"
    with pytest.raises(dbapi.Error, match=denied("SELECT", payroll)):
        query(bob, unload)
    assert query(bob, "LIST @~/out/") == []  # nothing written
    execute(alice, f"GRANT SELECT ON main.{payroll} TO '{bob.user_name}'")
    assert query(bob, unload)[0]["rows_unloaded"] == 1
    execute(alice, f"REVOKE SELECT ON main.{payroll} FROM '{bob.user_name}'")
    with pytest.raises(dbapi.Error, match=denied("SELECT", payroll)):
        query(bob, unload)


def test_unload_from_a_join_needs_select_on_every_table(
    alice: Any, bob: Any, payroll: str, unique_table: Callable[[str], str]
) -> None:
    bonus = unique_table("bonus")
    execute(alice, f"CREATE TABLE {bonus} AS SELECT 1 AS id, 100 AS amount")
    unload = (
        f"COPY INTO @~/joined/ FROM (SELECT p.name, b.amount FROM {payroll} p "
        f"JOIN {bonus} b ON p.id = b.id) {CSV}"
    )
    execute(alice, f"GRANT SELECT ON main.{payroll} TO '{bob.user_name}'")
    with pytest.raises(dbapi.Error, match=denied("SELECT", bonus)):
        query(bob, unload)
    assert query(bob, "LIST @~/joined/") == []
    execute(alice, f"GRANT SELECT ON main.{bonus} TO '{bob.user_name}'")
    assert query(bob, unload)[0]["rows_unloaded"] == 1
    [listed] = query(bob, "LIST @~/joined/")
    assert listed["size"] > 0


# -- adbc_ingest ------------------------------------------------------------------------------
def _ingest(conn: Any, table: str, mode: str, **kwargs: Any) -> int:
    with conn.cursor() as cur:
        return int(cur.adbc_ingest(table, pa.table({"id": [9], "name": ["ingested"]}), mode=mode, **kwargs))


def test_ingest_append_needs_insert(alice: Any, bob: Any, payroll: str) -> None:
    with pytest.raises(dbapi.Error, match=denied("INSERT", payroll)):
        _ingest(bob, payroll, "append")
    execute(alice, f"GRANT INSERT ON main.{payroll} TO '{bob.user_name}'")
    assert _ingest(bob, payroll, "append") == 1
    assert _ingest(bob, payroll, "create_append") == 1  # the table exists: INSERT is enough
    assert _count(alice, payroll) == 3


def test_ingest_replace_needs_ownership(alice: Any, bob: Any, payroll: str) -> None:
    execute(alice, f"GRANT INSERT ON main.{payroll} TO '{bob.user_name}'")
    with pytest.raises(dbapi.Error, match=f"Permission denied: OWNERSHIP on main[.]{payroll}"):
        _ingest(bob, payroll, "replace")
    assert query(alice, f"SELECT name FROM {payroll}") == [{"name": "alice"}]
    assert _ingest(alice, payroll, "replace") == 1  # the owner may
    assert query(alice, f"SELECT name FROM {payroll}") == [{"name": "ingested"}]


def test_ingested_table_belongs_to_its_creator(
    alice: Any, bob: Any, unique_table: Callable[[str], str]
) -> None:
    made, appended = unique_table("made"), unique_table("made_by_create_append")
    assert _ingest(alice, made, "create") == 1
    assert _ingest(alice, appended, "create_append") == 1
    for t in (made, appended):
        assert query(alice, f"SELECT name FROM {t}") == [{"name": "ingested"}]
        with pytest.raises(dbapi.Error, match=denied("SELECT", t)):
            query(bob, f"SELECT * FROM {t}")


def test_ingest_create_needs_create_on_the_schema(root_conn: Any, bob: Any) -> None:
    schema = f"locked_{uuid.uuid4().hex[:8]}"
    execute(root_conn, f"CREATE SCHEMA {schema}")
    with pytest.raises(dbapi.Error, match=f"Permission denied: USAGE on schema {schema}"):
        _ingest(bob, "t", "create", db_schema_name=schema)
    execute(root_conn, f"GRANT USAGE, CREATE ON {schema}.* TO '{bob.user_name}'")
    assert _ingest(bob, "t", "create", db_schema_name=schema) == 1
    assert query(bob, f"SELECT id FROM {schema}.t") == [{"id": 9}]


def test_ingest_into_a_temporary_table_is_the_sessions_own(alice: Any, bob: Any, payroll: str) -> None:
    # The name of alice's table, as a temporary table of bob's session: his own, no grant needed.
    assert _ingest(bob, payroll, "create", temporary=True) == 1
    assert _ingest(bob, payroll, "append", temporary=True) == 1
    assert query(bob, f"SELECT count(*) AS n FROM temp.main.{payroll}") == [{"n": 2}]
    assert _count(alice, payroll) == 1


# -- table stages -----------------------------------------------------------------------------
def test_table_stage_through_a_role(root_conn: Any, alice: Any, bob: Any, payroll: str, role: str) -> None:
    put(alice, f"@%{payroll}/a.csv", b"1,a\n")
    stage_denied = "Permission denied: {} on main[.]{} [(]table stage @%{}[)]"
    with pytest.raises(dbapi.Error, match=stage_denied.format("SELECT", payroll, payroll)):
        query(bob, f"LIST @%{payroll}")
    execute(root_conn, f"GRANT SELECT ON main.{payroll} TO ROLE {role}")
    execute(root_conn, f"GRANT ROLE {role} TO '{bob.user_name}'")
    assert [r["name"] for r in query(bob, f"LIST @%{payroll}")] == ["a.csv"]
    assert query(bob, f"SELECT $2 AS v FROM @%{payroll}/a.csv (FILE_FORMAT => 'CSV') s") == [{"v": "a"}]
    with pytest.raises(dbapi.Error, match=stage_denied.format("INSERT", payroll, payroll)):
        put(bob, f"@%{payroll}/b.csv", b"2,b\n")
    execute(root_conn, f"GRANT INSERT ON main.{payroll} TO ROLE {role}")
    put(bob, f"@%{payroll}/b.csv", b"2,b\n")
    assert sum(r["Rows_loaded"] for r in query(alice, f"COPY INTO {payroll} FROM @%{payroll} {CSV}")) == 2
    execute(root_conn, f"REVOKE ROLE {role} FROM USER {bob.user_name}")
    with pytest.raises(dbapi.Error, match=stage_denied.format("SELECT", payroll, payroll)):
        query(bob, f"LIST @%{payroll}")
