"""Transactions, session close, session options, users."""

from __future__ import annotations

import re

import adbc_driver_manager.dbapi as dbapi
import pyarrow.flight as flight
import pytest

from flight import commands as cmd
from tests.conftest import ROOT_PASSWORD, connect
from tests.flight.rawclient import RawClient


def test_commit_makes_rows_visible_to_others(server, unique_table):
    t = unique_table()
    writer = connect(server, autocommit=False)
    reader = connect(server)
    with writer.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INT)")
        cur.execute(f"INSERT INTO {t} VALUES (1)")
    with reader.cursor() as cur, pytest.raises(dbapi.Error, match=f"Table with name {t} does not exist"):
        cur.execute(f"SELECT * FROM {t}")
    writer.commit()
    with reader.cursor() as cur:
        cur.execute(f"SELECT a FROM {t}")
        assert cur.fetchall() == [(1,)]
    writer.close()
    reader.close()


def test_rollback_discards_changes(server, unique_table):
    t = unique_table()
    with connect(server) as setup, setup.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INT)")
    conn = connect(server, autocommit=False)
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {t} VALUES (1), (2)")
        cur.execute(f"SELECT count(*) FROM {t}")
        assert cur.fetchall() == [(2,)]
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {t}")
        assert cur.fetchall() == [(0,)]
    conn.close()


def test_close_session_rolls_back_open_transaction(server, unique_table):
    t = unique_table()
    with connect(server) as setup, setup.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INT)")
    conn = connect(server, autocommit=False)
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {t} VALUES (1)")
    conn.close()  # CloseSession, no commit
    with connect(server) as check, check.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {t}")
        assert cur.fetchall() == [(0,)]


def test_close_session_action_answers_closed(server):
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    [body] = raw.action("CloseSession", b"")
    assert cmd.CloseSessionResult.FromString(body).status == cmd.CLOSE_SESSION_CLOSED
    raw.close()


def test_unknown_transaction_id_is_refused(server):
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    with pytest.raises(flight.FlightServerError, match="Unknown transaction id for this session"):
        raw.info(cmd.CommandStatementQuery(query="SELECT 1", transaction_id=b"made-up"))
    raw.close()


def test_current_catalog_and_schema(server):
    with connect(server) as conn:
        assert conn.adbc_current_catalog == "stageflight"
        assert conn.adbc_current_db_schema == "main"
        with conn.cursor() as cur:
            cur.execute("CREATE SCHEMA IF NOT EXISTS analytics")
            cur.execute("CREATE OR REPLACE TABLE analytics.events AS SELECT 1 AS id")
        conn.adbc_current_db_schema = "analytics"
        assert conn.adbc_current_db_schema == "analytics"
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM events")
            assert cur.fetchall() == [(1,)]


def test_reserved_schema_cannot_be_selected_as_session_option(server):
    with connect(server) as conn:
        # The driver reports the server's ERROR_INVALID_VALUE result for the option in its own words.
        with pytest.raises(
            dbapi.ProgrammingError, match=r"Could not set option\(s\) 'schema' \(invalid value\)"
        ):
            conn.adbc_current_db_schema = "__stageflight"
        assert conn.adbc_current_db_schema == "main"


def test_create_alter_drop_show_users(server):
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER carol IDENTIFIED BY 'carol-pw'")
        cur.execute("SHOW USERS")
        names = [row[0] for row in cur.fetchall()]
        assert "carol" in names and "root" in names
        assert [d[0] for d in cur.description] == ["name", "is_admin", "created_on"]
        with pytest.raises(dbapi.Error, match="User already exists: carol"):
            cur.execute("CREATE USER carol IDENTIFIED BY 'x'")
        cur.execute("CREATE USER IF NOT EXISTS carol IDENTIFIED BY 'x'")
    with connect(server, user="carol", password="carol-pw") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute("DROP USER carol")
        with pytest.raises(dbapi.Error, match="User does not exist: carol"):
            cur.execute("DROP USER carol")
        cur.execute("DROP USER IF EXISTS carol")
    with pytest.raises(dbapi.ProgrammingError, match="Invalid user name or password"):
        connect(server, user="carol", password="carol-pw")


@pytest.mark.parametrize("name", ["../admin", "a-b", "1abc", "x y", "bob;drop", "é"])
def test_unsafe_user_names_are_refused(root_conn, name):
    expected = f"Invalid user name '{name}': use letters, digits and '_' (not starting with a digit)"
    with root_conn.cursor() as cur, pytest.raises(dbapi.Error, match=re.escape(expected)):
        cur.execute(f"CREATE USER \"{name}\" IDENTIFIED BY 'pw'")


def test_user_management_needs_root(server, make_user):
    name, password = make_user()
    with connect(server, user=name, password=password) as conn, conn.cursor() as cur:
        for sql in [
            "CREATE USER mallory IDENTIFIED BY 'x'",
            "DROP USER root",
            "SHOW USERS",
            "ALTER USER root IDENTIFIED BY 'owned'",
        ]:
            with pytest.raises(dbapi.ProgrammingError, match="Permission denied"):
                cur.execute(sql)
        # Changing one's own password is allowed.
        cur.execute(f"ALTER USER {name} IDENTIFIED BY 'mine-2'")
    with connect(server, user=name, password="mine-2") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]


def test_root_cannot_be_dropped(root_conn):
    with root_conn.cursor() as cur, pytest.raises(dbapi.Error, match="root user cannot be dropped"):
        cur.execute("DROP USER root")


def test_catalog_schema_is_unreachable(root_conn):
    with root_conn.cursor() as cur:
        for sql in [
            "SELECT * FROM __stageflight.users",
            "SELECT password_hash FROM __stageflight.users",
            "DROP SCHEMA __stageflight CASCADE",
        ]:
            with pytest.raises(dbapi.Error, match="Schema __stageflight is reserved"):
                cur.execute(sql)
