"""Table stages (@%t) follow their table's privileges (issue 13, as Snowflake): reading the stage
(LIST, GET, SELECT, COPY FROM) needs SELECT on the table, writing it (PUT, REMOVE, COPY INTO @%t)
needs INSERT. The table's owner (its creator) and root have both.
"""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as dbapi
import pyarrow as pa
import pytest

from engine.catalog.table_owners import OWNERS_TABLE
from tests.conftest import connect
from tests.e2e.stage_helpers import execute, get, put, query


def denied(privilege: str, t: str) -> str:
    """The refusal's text as a regex."""
    return f"Permission denied: {privilege} on main[.]{t} [(]table stage @%{t}[)]"


@pytest.fixture
def root_table(root_conn, unique_table):
    t = unique_table("owned")
    execute(root_conn, f"CREATE TABLE {t} (id INTEGER, name VARCHAR)")
    put(root_conn, f"@%{t}/secret.csv", b"1,root\n")
    return t


def _alice_table(alice, unique_table):
    t = unique_table("mine")
    execute(alice, f"CREATE TABLE {t} (id INTEGER, name VARCHAR)")
    return t


READS = [
    "LIST @%{t}",
    "PRESIGN @%{t}/secret.csv",
    "COPY INTO {mine} FROM @%{t} FILE_FORMAT = (TYPE = CSV)",
    "SELECT $1 FROM @%{t} (FILE_FORMAT => 'CSV') s",
    "SELECT * FROM LIST_STAGE(LOCATION => '@%{t}')",
    "SELECT * FROM INFER_SCHEMA(LOCATION => '@%{t}', FILE_FORMAT => 'CSV')",
    "LIST @%main.{t}",
    "LIST @#{t}",
]
WRITES = [
    "REMOVE @%{t}",
    "REMOVE @%{t}/secret.csv",
    "PRESIGN UPLOAD @%{t}/planted.csv",
    "COPY INTO @%{t}/out/ FROM {mine}",
]


@pytest.mark.parametrize(
    ("statement", "privilege"), [(s, "SELECT") for s in READS] + [(s, "INSERT") for s in WRITES]
)
def test_others_cannot_use_a_table_stage(root_conn, alice, root_table, unique_table, statement, privilege):
    mine = _alice_table(alice, unique_table)
    with pytest.raises(dbapi.Error, match=denied(privilege, root_table)):
        query(alice, statement.format(t=root_table, mine=mine))
    # Nothing was read, planted or removed.
    assert [r["name"] for r in query(root_conn, f"LIST @%{root_table}")] == ["secret.csv"]
    assert query(alice, f"SELECT count(*) AS n FROM {mine}") == [{"n": 0}]


@pytest.mark.parametrize("statement", WRITES)
def test_select_opens_reading_a_table_stage_not_writing(
    root_conn, alice, root_table, unique_table, statement
):
    mine = _alice_table(alice, unique_table)
    execute(root_conn, f"GRANT SELECT ON main.{root_table} TO '{alice.user_name}'")
    assert [r["name"] for r in query(alice, f"LIST @%{root_table}")] == ["secret.csv"]
    assert get(alice, f"@%{root_table}/secret.csv") == b"1,root\n"
    with pytest.raises(dbapi.Error, match=denied("INSERT", root_table)):
        query(alice, statement.format(t=root_table, mine=mine))
    assert [r["name"] for r in query(root_conn, f"LIST @%{root_table}")] == ["secret.csv"]


def test_insert_opens_writing_a_table_stage(root_conn, alice, root_table, unique_table):
    mine = _alice_table(alice, unique_table)
    execute(alice, f"INSERT INTO {mine} VALUES (7, 'seven')")
    execute(root_conn, f"GRANT INSERT ON main.{root_table} TO '{alice.user_name}'")
    put(alice, f"@%{root_table}/planted.csv", b"2,alice\n")
    assert query(alice, f"COPY INTO @%{root_table}/out/ FROM {mine}")[0]["rows_unloaded"] == 1
    assert execute(alice, f"REMOVE @%{root_table}/secret.csv") == 1
    # Writing is not reading: LIST still needs SELECT.
    with pytest.raises(dbapi.Error, match=denied("SELECT", root_table)):
        query(alice, f"LIST @%{root_table}")
    names = {r["name"].split("/")[0] for r in query(root_conn, f"LIST @%{root_table}")}
    assert names == {"out", "planted.csv"}  # secret.csv removed
    execute(root_conn, f"REVOKE INSERT ON main.{root_table} FROM '{alice.user_name}'")
    with pytest.raises(dbapi.Error, match=denied("INSERT", root_table)):
        put(alice, f"@%{root_table}/again.csv", b"3,alice\n")


def test_owner_uses_own_table_stage_and_root_reaches_all(root_conn, alice, bob, unique_table):
    t = _alice_table(alice, unique_table)
    put(alice, f"@%{t}/a.csv", b"1,a\n")
    assert [r["name"] for r in query(alice, f"LIST @%{t}")] == ["a.csv"]
    assert get(alice, f"@%{t}/a.csv") == b"1,a\n"
    assert query(alice, f"COPY INTO {t} FROM @%{t} FILE_FORMAT = (TYPE = CSV)")[0]["Rows_loaded"] == 1
    assert query(alice, f"COPY INTO @%{t}/out/ FROM {t} FILE_FORMAT = (TYPE = CSV)")[0]["rows_unloaded"] == 1
    assert query(alice, f"SELECT $1 AS v FROM @%{t}/a.csv (FILE_FORMAT => 'CSV') s") == [{"v": "1"}]
    assert len(query(alice, f"SELECT * FROM LIST_STAGE(LOCATION => '@%{t}')")) == 2
    # root reaches every table stage; bob, granted nothing, reaches none of alice's.
    assert len(query(root_conn, f"LIST @%{t}")) == 2
    assert get(root_conn, f"@%{t}/a.csv") == b"1,a\n"
    with pytest.raises(dbapi.Error, match=denied("SELECT", t)):
        query(bob, f"LIST @%{t}")
    assert execute(alice, f"REMOVE @%{t}/out/") == 1
    assert execute(root_conn, f"REMOVE @%{t}") == 1


def test_ctas_and_ingest_make_the_user_the_owner(alice, bob, unique_table):
    made_by_ctas, ingested = unique_table("ctas"), unique_table("ingest")
    execute(alice, f"CREATE TABLE {made_by_ctas} AS SELECT 1 AS id")
    with alice.cursor() as cur:
        cur.adbc_ingest(ingested, pa.table({"id": [1]}), mode="create")
    for t in (made_by_ctas, ingested):
        assert query(alice, f"LIST @%{t}") == []
        with pytest.raises(dbapi.Error, match=denied("SELECT", t)):
            query(bob, f"LIST @%{t}")


def test_replacing_a_table_makes_the_replacer_its_owner(root_conn, alice, root_table, unique_table):
    # Replacing needs the table's ownership: alice may not replace root's table.
    with pytest.raises(dbapi.Error, match=f"Permission denied: OWNERSHIP on main[.]{root_table}"):
        execute(alice, f"CREATE OR REPLACE TABLE {root_table} (id INTEGER)")
    mine = _alice_table(alice, unique_table)
    put(alice, f"@%{mine}/a.csv", b"1,a\n")
    execute(root_conn, f"CREATE OR REPLACE TABLE {mine} (id INTEGER)")
    assert query(root_conn, f"LIST @%{mine}") == []  # a new table: its stage starts empty
    # ... and root's now: alice's ownership went with the old table.
    with pytest.raises(dbapi.Error, match=denied("SELECT", mine)):
        query(alice, f"LIST @%{mine}")


def test_tables_without_an_owner_row_belong_to_root(server, root_conn, alice, unique_table):
    t = _alice_table(alice, unique_table)
    # A table created before owners were recorded has no row.
    with server.engine.metadata_cursor() as cur:
        cur.execute(f"DELETE FROM {OWNERS_TABLE} WHERE table_name = ?", [t])
    with pytest.raises(dbapi.Error, match=denied("SELECT", t)):
        query(alice, f"LIST @%{t}")
    assert query(root_conn, f"LIST @%{t}") == []


def test_owner_reaches_a_table_created_in_the_open_transaction(server, alice, unique_table):
    t = unique_table("txn")
    conn = connect(server, user=alice.user_name, password=user_password(alice), autocommit=False)
    try:
        execute(conn, f"CREATE TABLE {t} (id INTEGER)")
        assert query(conn, f"LIST @%{t}") == []
        conn.rollback()
        with pytest.raises(dbapi.Error, match="does not exist"):
            query(alice, f"LIST @%{t}")
    finally:
        conn.close()


def user_password(conn):
    # make_user's rule (tests/conftest.py): user<n> has password pw-<n>-secret.
    return f"pw-{conn.user_name.removeprefix('user')}-secret"
