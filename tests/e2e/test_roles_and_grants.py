"""Roles and grants through ADBC (issue 13 PR 4, issue 15 item 1): every statement form, with the
outcome read back through SHOW GRANTS / SHOW ROLES or through a stage the grant opens.

Table grants are recorded here; enforcing them on queries is a later step (not tested here).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import pytest

from flight.app import RunningServer
from tests.conftest import connect
from tests.e2e.stage_helpers import execute, query


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _grants(conn: Any, sql: str) -> set[tuple[str, str, str, str]]:
    return {(r["privileges"], r["object_name"], r["grant_to"], r["name"]) for r in query(conn, sql)}


def test_show_grants_has_databends_columns_and_public_sees_main(alice: Any) -> None:
    rows = query(alice, "SHOW GRANTS")
    assert list(rows[0]) == ["privileges", "object_name", "object_id", "grant_to", "name", "grants"]
    assert ("CREATE,USAGE", "main", "ROLE", "public") in {
        (r["privileges"], r["object_name"], r["grant_to"], r["name"]) for r in rows
    }
    [public] = [r for r in rows if r["name"] == "public"]
    assert public["grants"] == "GRANT CREATE,USAGE ON main.* TO ROLE public"


def test_create_role_grant_role_set_role_show_roles(root_conn: Any, alice: Any) -> None:
    role, parent = _name("analyst"), _name("reader")
    execute(root_conn, f"CREATE ROLE {role}")
    execute(root_conn, f"CREATE ROLE IF NOT EXISTS {role}")  # no error the second time
    execute(root_conn, f"CREATE ROLE '{parent}'")
    execute(root_conn, f"GRANT ROLE {parent} TO ROLE {role}")
    execute(root_conn, f"GRANT ROLE {role} TO '{alice.user_name}'")
    roles = {r["name"]: r for r in query(alice, "SHOW ROLES")}
    assert set(roles) == {role, parent, "public"}
    assert roles[role]["inherited_roles_name"] == parent and roles[role]["inherited_roles"] == 1
    assert roles["public"]["is_current"] and not roles[role]["is_current"]
    execute(alice, f"SET ROLE {role}")
    roles = {r["name"]: r for r in query(alice, "SHOW ROLES")}
    assert roles[role]["is_current"] and not roles["public"]["is_current"]
    execute(alice, "SET SECONDARY ROLES NONE")
    execute(alice, "SET SECONDARY ROLES ALL")
    # Root sees every role, the built-in ones included.
    assert {role, parent, "account_admin", "public"} <= {r["name"] for r in query(root_conn, "SHOW ROLES")}
    execute(root_conn, f"REVOKE ROLE {role} FROM USER {alice.user_name}")
    assert {r["name"] for r in query(alice, "SHOW ROLES")} == {"public"}
    execute(root_conn, f"DROP ROLE {role}")
    execute(root_conn, f"DROP ROLE IF EXISTS {role}")
    execute(root_conn, f"DROP ROLE {parent}")


def test_set_role_errors(root_conn: Any, alice: Any) -> None:
    with pytest.raises(dbapi.Error, match="Role does not exist: no_such_role"):
        execute(alice, "SET ROLE no_such_role")
    role = _name("notmine")
    execute(root_conn, f"CREATE ROLE {role}")
    with pytest.raises(dbapi.Error, match=f"Role {role} is not granted to user '{alice.user_name}'"):
        execute(alice, f"SET ROLE {role}")
    with pytest.raises(dbapi.Error, match="Expected ALL or NONE after SET SECONDARY ROLES but found 'SOME'"):
        execute(alice, "SET SECONDARY ROLES SOME")
    execute(alice, "SET ROLE public")  # everyone's
    execute(root_conn, f"DROP ROLE {role}")


def test_grant_and_revoke_on_a_table_and_a_schema(
    root_conn: Any, alice: Any, unique_table: Callable[[str], str]
) -> None:
    table = unique_table("payroll")
    execute(root_conn, f"CREATE TABLE {table} (id INTEGER)")
    execute(root_conn, f"GRANT SELECT, INSERT ON main.{table} TO '{alice.user_name}'")
    [row] = [
        r for r in query(root_conn, f"SHOW GRANTS FOR '{alice.user_name}'") if r["object_name"] != "main"
    ]
    assert row["privileges"] == "INSERT,SELECT"
    assert row["object_name"] == f"main.{table}"
    assert uuid.UUID(row["object_id"])  # tables are granted by their uuid
    assert (row["grant_to"], row["name"]) == ("USER", alice.user_name)
    assert row["grants"] == f"GRANT INSERT,SELECT ON main.{table} TO '{alice.user_name}'"
    # The user sees the same through SHOW GRANTS without FOR.
    assert ("INSERT,SELECT", f"main.{table}", "USER", alice.user_name) in _grants(alice, "SHOW GRANTS")
    execute(root_conn, f"REVOKE INSERT ON {table} FROM USER {alice.user_name}")
    assert ("SELECT", f"main.{table}", "USER", alice.user_name) in _grants(alice, "SHOW GRANTS")
    execute(root_conn, f"REVOKE ALL PRIVILEGES ON main.{table} FROM {alice.user_name}")
    assert not [g for g in _grants(alice, "SHOW GRANTS") if g[1] == f"main.{table}"]
    execute(root_conn, f"DROP TABLE {table}")


def test_schema_and_global_grants_to_a_role_show_for_its_members(root_conn: Any, alice: Any) -> None:
    role, schema = _name("sales_team"), _name("sales")
    execute(root_conn, f"CREATE SCHEMA {schema}")
    execute(root_conn, f"CREATE ROLE {role}")
    execute(root_conn, f"GRANT ALL ON {schema}.* TO ROLE {role}")
    execute(root_conn, f"GRANT SELECT ON *.* TO ROLE {role}")
    execute(root_conn, f"GRANT ROLE {role} TO {alice.user_name}")
    everything = "ALTER,CREATE,DELETE,DROP,INSERT,SELECT,UPDATE,USAGE"
    assert _grants(root_conn, f"SHOW GRANTS FOR ROLE {role}") == {
        (everything, schema, "ROLE", role),
        ("SELECT", "*.*", "ROLE", role),
    }
    mine = _grants(alice, "SHOW GRANTS")
    assert (everything, schema, "ROLE", role) in mine and ("SELECT", "*.*", "ROLE", role) in mine
    assert {r["grants"] for r in query(alice, f"SHOW GRANTS FOR ROLE {role}")} == {
        f"GRANT {everything} ON {schema}.* TO ROLE {role}",
        f"GRANT SELECT ON *.* TO ROLE {role}",
    }
    execute(root_conn, f"REVOKE SELECT ON *.* FROM ROLE {role}")
    assert _grants(root_conn, f"SHOW GRANTS FOR ROLE {role}") == {(everything, schema, "ROLE", role)}
    execute(root_conn, f"DROP ROLE {role}")
    execute(root_conn, f"DROP SCHEMA {schema}")


def test_only_owner_or_account_admin_may_grant(
    root_conn: Any, alice: Any, bob: Any, unique_table: Callable[[str], str]
) -> None:
    theirs, mine = unique_table("roots"), unique_table("alices")
    execute(root_conn, f"CREATE TABLE {theirs} (id INTEGER)")
    with pytest.raises(dbapi.Error, match=f"only the owner of main.{theirs} or account_admin may grant"):
        execute(alice, f"GRANT SELECT ON {theirs} TO {bob.user_name}")
    with pytest.raises(dbapi.Error, match=r"REVOKE on \*\.\* requires the account_admin role"):
        execute(alice, f"REVOKE SELECT ON *.* FROM {bob.user_name}")
    with pytest.raises(dbapi.Error, match="CREATE ROLE requires the account_admin role"):
        execute(alice, "CREATE ROLE alices_role")
    # Alice owns what she creates, so she may grant on it.
    execute(alice, f"CREATE TABLE {mine} (id INTEGER)")
    execute(alice, f"GRANT SELECT ON {mine} TO '{bob.user_name}'@'%'")
    assert ("SELECT", f"main.{mine}", "USER", bob.user_name) in _grants(bob, "SHOW GRANTS")
    assert ("OWNERSHIP", f"main.{mine}", "USER", alice.user_name) in _grants(alice, "SHOW GRANTS")
    with pytest.raises(dbapi.Error, match=f"SHOW GRANTS FOR user '{alice.user_name}' requires account_admin"):
        query(bob, f"SHOW GRANTS FOR {alice.user_name}")
    execute(alice, f"DROP TABLE {mine}")
    execute(root_conn, f"DROP TABLE {theirs}")


def test_grant_ownership(root_conn: Any, alice: Any, bob: Any, unique_table: Callable[[str], str]) -> None:
    table, role = unique_table("handed"), _name("owners")
    execute(root_conn, f"CREATE TABLE {table} (id INTEGER)")
    execute(root_conn, f"GRANT OWNERSHIP ON main.{table} TO '{alice.user_name}'")
    assert ("OWNERSHIP", f"main.{table}", "USER", alice.user_name) in _grants(alice, "SHOW GRANTS")
    execute(alice, f"GRANT SELECT ON {table} TO {bob.user_name}")  # the new owner may grant
    with pytest.raises(dbapi.Error, match="Ownership cannot be granted to role public"):
        execute(alice, f"GRANT OWNERSHIP ON {table} TO ROLE public")
    with pytest.raises(dbapi.Error, match="REVOKE OWNERSHIP is not supported"):
        execute(root_conn, f"REVOKE OWNERSHIP ON {table} FROM {alice.user_name}")
    execute(root_conn, f"CREATE ROLE {role}")
    execute(alice, f"GRANT OWNERSHIP ON {table} TO ROLE {role}")
    assert ("OWNERSHIP", f"main.{table}", "ROLE", role) in _grants(root_conn, f"SHOW GRANTS FOR ROLE {role}")
    with pytest.raises(dbapi.Error, match=f"only the owner of main.{table} or account_admin"):
        execute(alice, f"GRANT SELECT ON {table} TO {alice.user_name}")  # no longer hers
    # DROP ROLE: what the role owned passes to root.
    execute(root_conn, f"DROP ROLE {role}")
    assert ("OWNERSHIP", f"main.{table}", "USER", "root") in _grants(root_conn, "SHOW GRANTS")
    # Outstanding grants stay with an ownership transfer.
    assert ("SELECT", f"main.{table}", "USER", bob.user_name) in _grants(bob, "SHOW GRANTS")
    execute(root_conn, f"DROP TABLE {table}")


def test_role_errors(root_conn: Any, alice: Any) -> None:
    a, b = _name("cyc_a"), _name("cyc_b")
    with pytest.raises(dbapi.Error, match="Role does not exist: nope_role"):
        execute(root_conn, f"GRANT ROLE nope_role TO {alice.user_name}")
    with pytest.raises(dbapi.Error, match="Role does not exist: nope_role"):
        execute(root_conn, "GRANT SELECT ON *.* TO ROLE nope_role")
    with pytest.raises(dbapi.Error, match="User does not exist: nobody_here"):
        execute(root_conn, "GRANT SELECT ON *.* TO 'nobody_here'")
    execute(root_conn, f"CREATE ROLE {a}")
    execute(root_conn, f"CREATE ROLE {b}")
    execute(root_conn, f"GRANT ROLE {a} TO ROLE {b}")
    with pytest.raises(dbapi.Error, match=f"Cannot grant role {b} to role {a}: .*cycle"):
        execute(root_conn, f"GRANT ROLE {b} TO ROLE {a}")
    with pytest.raises(dbapi.Error, match=f"Role already exists: {a}"):
        execute(root_conn, f"CREATE ROLE {a}")
    for builtin in ("account_admin", "public"):
        with pytest.raises(dbapi.Error, match=f"The built-in role {builtin} cannot be dropped"):
            execute(root_conn, f"DROP ROLE {builtin}")
    with pytest.raises(dbapi.Error, match="Role does not exist: gone_role"):
        execute(root_conn, "DROP ROLE gone_role")
    with pytest.raises(dbapi.Error, match="Invalid role name '1bad'"):
        execute(root_conn, "CREATE ROLE '1bad'")
    with pytest.raises(dbapi.Error, match="Privilege READ does not apply to a table grant"):
        execute(root_conn, f"GRANT READ ON main.t TO {alice.user_name}")
    with pytest.raises(dbapi.Error, match="Table does not exist: main.no_such_table"):
        execute(root_conn, f"GRANT SELECT ON main.no_such_table TO {alice.user_name}")
    with pytest.raises(dbapi.Error, match="Schema does not exist: no_such_schema"):
        execute(root_conn, f"GRANT SELECT ON no_such_schema.* TO {alice.user_name}")
    with pytest.raises(dbapi.Error, match="not catalog.schema.table"):
        execute(root_conn, f"GRANT SELECT ON memory.main.t TO {alice.user_name}")
    execute(root_conn, f"DROP ROLE {b}")
    execute(root_conn, f"DROP ROLE {a}")


def test_quoted_user_names_everywhere(server: RunningServer, root_conn: Any) -> None:
    name = _name("quoted")
    execute(root_conn, f"CREATE USER '{name}' IDENTIFIED BY 'pw-one'")
    execute(root_conn, f"ALTER USER '{name}'@'%' IDENTIFIED BY 'pw-two'")
    execute(root_conn, "CREATE STAGE IF NOT EXISTS quoted_names_stage")
    with connect(server, user=name, password="pw-two") as conn:
        with pytest.raises(dbapi.Error, match="privilege READ is required on stage @quoted_names_stage"):
            query(conn, "LIST @quoted_names_stage")
        execute(root_conn, f"GRANT READ ON STAGE quoted_names_stage TO '{name}'")
        assert query(conn, "LIST @quoted_names_stage") == []
        execute(root_conn, f"REVOKE READ ON STAGE quoted_names_stage FROM '{name}'@'%'")
        with pytest.raises(dbapi.Error, match="privilege READ is required"):
            query(conn, "LIST @quoted_names_stage")
        execute(root_conn, f"GRANT READ ON STAGE quoted_names_stage TO USER '{name}'")
        assert ("READ", "quoted_names_stage", "USER", name) in _grants(conn, "SHOW GRANTS")
        execute(root_conn, f"REVOKE READ ON STAGE quoted_names_stage FROM USER '{name}'")
        assert not [g for g in _grants(conn, "SHOW GRANTS") if g[1] == "quoted_names_stage"]
    with pytest.raises(dbapi.Error, match="only the host '%' is supported"):
        execute(root_conn, f"GRANT READ ON STAGE quoted_names_stage TO '{name}'@'localhost'")
    with pytest.raises(dbapi.Error, match="Invalid user name 'bad name'"):
        execute(root_conn, "CREATE USER 'bad name' IDENTIFIED BY 'pw'")
    execute(root_conn, f"DROP USER '{name}'@'%'")
    assert name not in {r["name"] for r in query(root_conn, "SHOW USERS")}
    execute(root_conn, "DROP STAGE quoted_names_stage")


def test_stage_grants_to_roles(root_conn: Any, alice: Any) -> None:
    role, stage = _name("loaders"), _name("role_stage")
    execute(root_conn, f"CREATE STAGE {stage}")
    execute(root_conn, f"CREATE ROLE {role}")
    execute(root_conn, f"GRANT READ ON STAGE {stage} TO ROLE {role}")
    with pytest.raises(dbapi.Error, match=f"privilege READ is required on stage @{stage}"):
        query(alice, f"LIST @{stage}")
    execute(root_conn, f"GRANT ROLE {role} TO {alice.user_name}")
    assert query(alice, f"LIST @{stage}") == []
    assert ("READ", stage, "ROLE", role) in _grants(alice, "SHOW GRANTS")
    execute(root_conn, f"REVOKE ROLE {role} FROM {alice.user_name}")
    with pytest.raises(dbapi.Error, match="privilege READ is required"):
        query(alice, f"LIST @{stage}")
    # CREATE STAGE through a role.
    execute(root_conn, f"GRANT CREATE STAGE ON *.* TO ROLE {role}")
    execute(root_conn, f"GRANT ROLE {role} TO {alice.user_name}")
    own = _name("alice_stage")
    execute(alice, f"CREATE STAGE {own}")
    execute(alice, f"DROP STAGE {own}")
    execute(root_conn, f"DROP ROLE {role}")
    with pytest.raises(dbapi.Error, match="requires the CREATE STAGE privilege"):
        execute(alice, f"CREATE STAGE {own}")
    execute(root_conn, f"DROP STAGE {stage}")


def test_default_role_applies_to_new_sessions(server: RunningServer, root_conn: Any) -> None:
    name, role = _name("defrole"), _name("home")
    execute(root_conn, f"CREATE USER {name} IDENTIFIED BY 'pw-def'")
    execute(root_conn, f"CREATE ROLE {role}")
    execute(root_conn, f"GRANT ROLE {role} TO {name}")
    execute(root_conn, f"ALTER USER '{name}' WITH DEFAULT_ROLE = '{role}'")
    with connect(server, user=name, password="pw-def") as conn:
        roles = {r["name"]: r for r in query(conn, "SHOW ROLES")}
        assert roles[role]["is_current"] and roles[role]["is_default"]
    with pytest.raises(dbapi.Error, match="Role does not exist: no_home"):
        execute(root_conn, f"ALTER USER {name} WITH DEFAULT_ROLE = 'no_home'")
    execute(root_conn, f"DROP USER {name}")
    execute(root_conn, f"DROP ROLE {role}")


def test_drop_user_removes_grants_and_memberships(
    server: RunningServer, root_conn: Any, unique_table: Callable[[str], str]
) -> None:
    name, role, table = _name("leaver"), _name("crew"), unique_table("kept")
    execute(root_conn, f"CREATE USER {name} IDENTIFIED BY 'pw-leave'")
    execute(root_conn, f"CREATE ROLE {role}")
    execute(root_conn, f"GRANT ROLE {role} TO {name}")
    execute(root_conn, f"CREATE TABLE {table} (id INTEGER)")
    execute(root_conn, f"GRANT SELECT ON {table} TO {name}")
    with connect(server, user=name, password="pw-leave") as conn:
        owned = unique_table("owned")
        execute(conn, f"CREATE TABLE {owned} (id INTEGER)")
    execute(root_conn, f"DROP USER {name}")
    execute(root_conn, f"CREATE USER {name} IDENTIFIED BY 'pw-back'")
    # The re-created user has public's grants only, and no role.
    assert _grants(root_conn, f"SHOW GRANTS FOR {name}") == {("CREATE,USAGE", "main", "ROLE", "public")}
    with connect(server, user=name, password="pw-back") as conn:
        assert {r["name"] for r in query(conn, "SHOW ROLES")} == {"public"}
    # What the dropped user owned passed to root.
    assert ("OWNERSHIP", f"main.{owned}", "USER", "root") in _grants(root_conn, "SHOW GRANTS")
    execute(root_conn, f"DROP USER {name}")
    execute(root_conn, f"DROP ROLE {role}")
    execute(root_conn, f"DROP TABLE {table}")
    execute(root_conn, f"DROP TABLE {owned}")


def test_granting_account_admin_makes_an_admin(server: RunningServer, root_conn: Any) -> None:
    name = _name("deputy")
    execute(root_conn, f"CREATE USER {name} IDENTIFIED BY 'pw-dep'")
    execute(root_conn, f"GRANT ROLE account_admin TO {name}")
    with connect(server, user=name, password="pw-dep") as conn:
        assert name in {r["name"] for r in query(conn, "SHOW USERS")}  # root-only before
        [me] = [r for r in query(conn, "SHOW USERS") if r["name"] == name]
        assert me["is_admin"] is True
    execute(root_conn, f"DROP USER {name}")


def test_other_set_statements_still_reach_the_sql_guard(root_conn: Any) -> None:
    # SET is now a first word the engine looks at; anything but SET ROLE / SECONDARY ROLES goes
    # on to the SQL allowlist, which refuses it as before.
    with pytest.raises(dbapi.Error, match="Statement SET is not allowed"):
        execute(root_conn, "SET threads = 1")
    with pytest.raises(dbapi.Error, match="Statement SET is not allowed"):
        execute(root_conn, "SET search_path = '__stageflight'")
