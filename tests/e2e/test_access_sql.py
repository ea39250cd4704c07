"""Access control on plain SQL: a user with no grants can neither read, change nor drop another
user's tables by any route the guard lets through; grants, roles and REVOKE take effect at once."""

from __future__ import annotations

import adbc_driver_manager.dbapi as dbapi
import pytest

from tests.conftest import connect


@pytest.fixture
def payroll(server, unique_table):
    """A table of root's with one row, and its name."""
    t = unique_table("payroll")
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (who VARCHAR, salary INTEGER)")
        cur.execute(f"INSERT INTO {t} VALUES ('carol', 100)")
    return t


def _denied(cur, sql: str, privilege: str, table: str) -> None:
    with pytest.raises(dbapi.Error, match=f"Permission denied: {privilege} on main.{table}"):
        cur.execute(sql)
        cur.fetchall()


def test_no_grants_no_access_by_any_route(server, alice, payroll):
    t = payroll
    with alice.cursor() as cur:
        reads = [
            f"SELECT * FROM {t}",
            f'SELECT * FROM "{t.upper()}"',
            f"SELECT * FROM main.{t}",
            f"SELECT * FROM stageflight.main.{t}",
            f"SELECT 1 WHERE EXISTS (SELECT 1 FROM {t})",
            f"SELECT (SELECT max(salary) FROM {t})",
            f"WITH x AS (SELECT * FROM {t}) SELECT * FROM x",
            f"SELECT * FROM range(1) r JOIN {t} p ON true",
            f"SELECT 1 UNION ALL SELECT salary FROM {t}",
            f"DESCRIBE {t}",
        ]
        for sql in reads:
            _denied(cur, sql, "SELECT", t)
        _denied(cur, f"INSERT INTO {t} VALUES ('mallory', 1)", "INSERT", t)
        _denied(cur, f"UPDATE {t} SET salary = 0", "UPDATE", t)
        _denied(cur, f"DELETE FROM {t}", "DELETE", t)
        _denied(cur, f"TRUNCATE {t}", "DELETE", t)
        _denied(cur, f"DROP TABLE {t}", "DROP", t)
        _denied(cur, f"ALTER TABLE {t} ADD COLUMN x INTEGER", "ALTER", t)
        _denied(cur, f"CREATE VIEW peek AS SELECT * FROM {t}", "SELECT", t)
        _denied(cur, f"CREATE TABLE copied AS SELECT * FROM {t}", "SELECT", t)
        _denied(cur, f"INSERT INTO {t} SELECT * FROM {t}", "INSERT", t)
    with connect(server) as root, root.cursor() as cur:
        cur.execute(f"SELECT who, salary FROM {t}")
        assert cur.fetchall() == [("carol", 100)]  # nothing changed


def test_grant_select_then_revoke(server, alice, payroll):
    t = payroll
    with connect(server) as root, root.cursor() as r, alice.cursor() as cur:
        r.execute(f"GRANT SELECT ON main.{t} TO '{alice.user_name}'")
        cur.execute(f"SELECT who FROM {t}")
        assert cur.fetchall() == [("carol",)]
        _denied(cur, f"INSERT INTO {t} VALUES ('x', 1)", "INSERT", t)
        r.execute(f"REVOKE SELECT ON main.{t} FROM '{alice.user_name}'")
        _denied(cur, f"SELECT who FROM {t}", "SELECT", t)


def test_prepared_statement_re_executed_after_revoke_is_refused(server, alice, payroll):
    t = payroll
    with connect(server) as root, root.cursor() as r:
        r.execute(f"GRANT SELECT ON {t} TO {alice.user_name}")
        cur = alice.cursor()
        cur.execute(f"SELECT salary FROM {t}")
        assert cur.fetchall() == [(100,)]
        r.execute(f"REVOKE SELECT ON {t} FROM {alice.user_name}")
        _denied(cur, f"SELECT salary FROM {t}", "SELECT", t)  # the same prepared text, again
        cur.close()


def test_privileges_through_a_role_and_a_schema_grant(server, alice, bob, payroll, unique_table):
    t = payroll
    role = unique_table("analyst")
    with connect(server) as root, root.cursor() as r:
        r.execute(f"CREATE ROLE {role}")
        r.execute(f"GRANT SELECT, UPDATE ON main.* TO ROLE {role}")
        r.execute(f"GRANT ROLE {role} TO '{alice.user_name}'")
        with alice.cursor() as cur:
            cur.execute(f"UPDATE {t} SET salary = salary + 1")
            cur.execute(f"SELECT salary FROM {t}")
            assert cur.fetchall() == [(101,)]
            _denied(cur, f"DELETE FROM {t}", "DELETE", t)
        with bob.cursor() as cur:
            _denied(cur, f"SELECT salary FROM {t}", "SELECT", t)
        r.execute(f"REVOKE ROLE {role} FROM '{alice.user_name}'")
        with alice.cursor() as cur:
            _denied(cur, f"SELECT salary FROM {t}", "SELECT", t)


def test_own_tables_are_private_until_granted(alice, bob, unique_table):
    t = unique_table("mine")
    with alice.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INTEGER)")
        cur.execute(f"INSERT INTO {t} VALUES (1)")
        cur.execute(f"SELECT a FROM {t}")
        assert cur.fetchall() == [(1,)]
    with bob.cursor() as cur:
        _denied(cur, f"SELECT a FROM {t}", "SELECT", t)
        _denied(cur, f"DROP TABLE {t}", "DROP", t)
    with alice.cursor() as cur:
        cur.execute(f"GRANT SELECT ON {t} TO {bob.user_name}")  # the owner grants
    with bob.cursor() as cur:
        cur.execute(f"SELECT a FROM {t}")
        assert cur.fetchall() == [(1,)]
        _denied(cur, f"DELETE FROM {t}", "DELETE", t)
    with alice.cursor() as cur:
        cur.execute(f"DROP TABLE {t}")


def test_a_view_reads_with_its_owners_rights(server, alice, payroll, unique_table):
    t = payroll
    v = unique_table("payroll_names")
    with connect(server) as root, root.cursor() as r:
        r.execute(f"CREATE VIEW {v} AS SELECT who FROM {t}")
        with alice.cursor() as cur:
            _denied(cur, f"SELECT * FROM {v}", "SELECT", v)
        r.execute(f"GRANT SELECT ON {v} TO {alice.user_name}")
        with alice.cursor() as cur:
            cur.execute(f"SELECT * FROM {v}")
            assert cur.fetchall() == [("carol",)]
            _denied(cur, f"SELECT salary FROM {t}", "SELECT", t)  # the table itself stays closed


def test_creating_schemas_and_replacing_others_tables(server, alice, payroll, unique_table):
    schema = unique_table("s")
    with alice.cursor() as cur:
        with pytest.raises(dbapi.Error, match=f"Permission denied: CREATE SCHEMA {schema}"):
            cur.execute(f"CREATE SCHEMA {schema}")
        _denied(cur, f"CREATE OR REPLACE TABLE {payroll} (x INTEGER)", "OWNERSHIP", payroll)
    with connect(server) as root, root.cursor() as r:
        r.execute(f"GRANT CREATE ON *.* TO '{alice.user_name}'")
    with alice.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
        cur.execute(f"CREATE TABLE {schema}.t (a INTEGER)")  # the schema's owner may create in it
        cur.execute(f"INSERT INTO {schema}.t VALUES (5)")
        cur.execute(f"SELECT a FROM {schema}.t")
        assert cur.fetchall() == [(5,)]


def test_public_may_create_in_main_until_revoked(server, alice, unique_table):
    t = unique_table("p")
    with connect(server) as root, root.cursor() as r:
        r.execute("REVOKE CREATE ON main.* FROM ROLE public")
        try:
            with alice.cursor() as cur:
                with pytest.raises(dbapi.Error, match="Permission denied: CREATE on schema main"):
                    cur.execute(f"CREATE TABLE {t} (a INTEGER)")
        finally:
            r.execute("GRANT CREATE ON main.* TO ROLE public")
    with alice.cursor() as cur:
        cur.execute(f"CREATE TABLE {t} (a INTEGER)")
        cur.execute(f"SELECT count(*) FROM {t}")
        assert cur.fetchall() == [(0,)]


def test_many_users_at_once_see_only_their_own(server, make_user, unique_table):
    """Concurrency: 8 users create, fill and probe at once; every probe of another's table is refused."""
    import threading

    users = [make_user() for _ in range(8)]
    tables = [unique_table("own") for _ in users]
    failures: list[str] = []

    def work(i: int) -> None:
        name, password = users[i]
        try:
            with connect(server, user=name, password=password) as conn, conn.cursor() as cur:
                cur.execute(f"CREATE TABLE {tables[i]} (a INTEGER)")
                cur.execute(f"INSERT INTO {tables[i]} VALUES ({i})")
                for _ in range(5):
                    cur.execute(f"SELECT a FROM {tables[i]}")
                    if cur.fetchall() != [(i,)]:
                        failures.append(f"{name} lost its row")
                    other = tables[(i + 1) % len(tables)]
                    try:
                        cur.execute(f"SELECT a FROM {other}")
                        cur.fetchall()
                        failures.append(f"{name} read {other}")
                    except dbapi.Error as exc:
                        if "Permission denied" not in str(exc) and "does not exist" not in str(exc):
                            failures.append(f"{name}: {exc}")
        except Exception as exc:  # noqa: BLE001 - reported below, with the user
            failures.append(f"{name}: {exc}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(users))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []


def test_preparing_with_parameters_shows_no_columns_of_a_closed_table(server, payroll):
    """A parameterised query is described at prepare (LIMIT 0): that needs the privilege too."""
    import pyarrow.flight as flight

    from tests.flight.rawclient import RawClient

    with connect(server) as root, root.cursor() as r:
        r.execute("CREATE USER IF NOT EXISTS describe_probe IDENTIFIED BY 'probe-pw'")
    client = RawClient(server.uri, "describe_probe", "probe-pw")
    try:
        denied = f"Permission denied: SELECT on main.{payroll}"
        with pytest.raises(flight.FlightUnauthorizedError, match=denied):
            client.prepare(f"SELECT * FROM {payroll} WHERE salary > ?")
    finally:
        client.close()


def test_a_table_created_between_check_and_run_is_not_read(alice, bob, unique_table):
    """The check and the statement share one snapshot: a table that appears (or is replaced)
    while bob's statement runs is either refused or not there, never read."""
    import threading

    t = unique_table("race")
    stop = threading.Event()
    leaks: list[object] = []

    def churn() -> None:
        with alice.cursor() as cur:
            while not stop.is_set():
                cur.execute(f"CREATE OR REPLACE TABLE {t} AS SELECT 42 AS secret")
                cur.execute(f"DROP TABLE IF EXISTS {t}")

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        with bob.cursor() as cur:
            for _ in range(150):
                try:
                    cur.execute(f"SELECT secret FROM {t}")
                    leaks.append(cur.fetchall())
                except dbapi.Error as exc:
                    message = str(exc)
                    if "Permission denied" not in message and "does not exist" not in message:
                        leaks.append(message)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert leaks == []
