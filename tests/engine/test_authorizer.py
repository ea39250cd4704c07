"""The Authorizer's rules on a real security database in a temporary directory (no mocks)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from engine.catalog.authorizer import Authorizer
from engine.catalog.privileges import (
    ROLE,
    SCHEMA,
    STAGE,
    TABLE,
    USER,
    Principal,
    PrivilegeStore,
    expand_privileges,
)
from engine.catalog.security_db import SecurityDatabase
from engine.errors import ObjectAlreadyExists, PermissionDenied, StatementRejected

T1 = "11111111-1111-1111-1111-111111111111"
ALICE, BOB = Principal(USER, "alice"), Principal(USER, "bob")


@pytest.fixture
def security(tmp_path: Path) -> Iterator[SecurityDatabase]:
    db = SecurityDatabase(tmp_path / "security.duckdb")
    with db.transaction() as cur:
        for name in ("root", "alice", "bob"):
            cur.execute("INSERT INTO users (name, password_hash) VALUES (?, 'x')", [name])
        cur.execute("INSERT INTO role_grants VALUES ('account_admin', 'user', 'root', 'root')")
    yield db
    db.close()


@pytest.fixture
def auth(security: SecurityDatabase) -> Authorizer:
    return Authorizer(PrivilegeStore(security))


def test_principals_close_over_the_hierarchy_and_include_public(auth: Authorizer) -> None:
    store = auth.store
    store.create_role("analyst", "root")
    store.create_role("reader", "root")
    store.grant_role("reader", Principal(ROLE, "analyst"), "root")
    store.grant_role("analyst", ALICE, "root")
    assert auth.principals("alice") == frozenset(
        {ALICE, Principal(ROLE, "analyst"), Principal(ROLE, "reader"), Principal(ROLE, "public")}
    )
    assert auth.principals("bob") == frozenset({BOB, Principal(ROLE, "public")})
    # Secondary roles NONE: only the current role (and what it inherits) counts.
    assert auth.principals("alice", "reader", secondary_all=False) == frozenset(
        {ALICE, Principal(ROLE, "reader"), Principal(ROLE, "public")}
    )
    # A current role not granted (revoked since SET ROLE) does not count.
    assert Principal(ROLE, "analyst") not in auth.principals("bob", "analyst")


def test_table_grant_schema_grant_global_grant_owner_and_admin(auth: Authorizer) -> None:
    store = auth.store
    alice = auth.principals("alice")
    with pytest.raises(PermissionDenied, match=r"^Permission denied: SELECT on main\.payroll$"):
        auth.require_table(alice, "main", T1, "SELECT", "root", table_name="payroll")
    store.grant(TABLE, T1, ["SELECT"], ALICE, "root")
    auth.require_table(auth.principals("alice"), "main", T1, "SELECT", "root")
    with pytest.raises(PermissionDenied, match="INSERT on main.payroll"):
        auth.require_table(auth.principals("alice"), "main", T1, "INSERT", "root", table_name="payroll")
    # db.* covers every table of the schema, including ones that do not exist yet.
    store.create_role("writers", "root")
    store.grant(SCHEMA, "sales", ["INSERT"], Principal(ROLE, "writers"), "root")
    store.grant_role("writers", BOB, "root")
    bob = auth.principals("bob")
    auth.require_table(bob, "Sales", "future-table-id", "INSERT", "root")
    assert not auth.allows_table(bob, "main", T1, "INSERT", "root")
    store.grant("global", "*", ["DELETE"], BOB, "root")
    assert auth.allows_table(auth.principals("bob"), "main", T1, "DELETE", "root")
    # The owner has everything; account_admin (root) has everything.
    assert auth.allows_table(auth.principals("bob"), "main", T1, "DROP", "bob")
    assert auth.allows_table(auth.principals("bob"), "main", T1, "DROP", Principal(ROLE, "writers"))
    assert auth.allows_table(auth.principals("root"), "main", T1, "DROP", "alice")


def test_revoke_takes_effect_through_the_version_cache(auth: Authorizer) -> None:
    store = auth.store
    store.grant(TABLE, T1, ["SELECT", "INSERT"], ALICE, "root")
    before = store.version()
    assert auth.effective(auth.principals("alice"))[(TABLE, T1)] == frozenset({"SELECT", "INSERT"})
    store.revoke(TABLE, T1, ["SELECT"], ALICE)
    assert store.version() == before + 1
    assert auth.effective(auth.principals("alice"))[(TABLE, T1)] == frozenset({"INSERT"})


def test_public_may_create_in_main_until_revoked(auth: Authorizer) -> None:
    alice = auth.principals("alice")
    auth.require_schema_create(alice, "main")
    with pytest.raises(PermissionDenied, match="Permission denied: USAGE on schema sales"):
        auth.require_schema_create(alice, "sales")
    auth.store.revoke(SCHEMA, "main", ["CREATE"], Principal(ROLE, "public"))
    with pytest.raises(PermissionDenied, match="Permission denied: CREATE on schema main"):
        auth.require_schema_create(auth.principals("alice"), "main")
    auth.store.set_owner(SCHEMA, "sales", ALICE)
    auth.require_schema_create(auth.principals("alice"), "sales")


def test_visible_tables_keeps_owned_and_granted_rows(auth: Authorizer) -> None:
    rows = [("main", T1, "root"), ("main", "t2", "alice"), ("sales", "t3", "root"), ("main", "t4", None)]
    auth.store.grant(SCHEMA, "sales", ["SELECT"], ALICE, "root")
    assert auth.visible_tables(auth.principals("alice"), rows) == [
        ("main", "t2", "alice"),
        ("sales", "t3", "root"),
    ]
    assert auth.visible_tables(auth.principals("root"), rows) == rows
    # USAGE and CREATE on main (public's) do not make root's tables visible.
    assert auth.visible_tables(auth.principals("bob"), rows) == []


def test_role_cycles_and_builtin_roles_are_refused(auth: Authorizer) -> None:
    store = auth.store
    for name in ("a", "b", "c"):
        store.create_role(name, "root")
    store.grant_role("a", Principal(ROLE, "b"), "root")  # b holds a
    store.grant_role("b", Principal(ROLE, "c"), "root")  # c holds b
    with pytest.raises(StatementRejected, match="cycle"):
        store.grant_role("c", Principal(ROLE, "a"), "root")
    with pytest.raises(StatementRejected, match="cycle"):
        store.grant_role("a", Principal(ROLE, "a"), "root")
    with pytest.raises(StatementRejected, match="built-in role account_admin cannot be dropped"):
        store.drop_role("account_admin")
    with pytest.raises(StatementRejected, match="built-in role public cannot be dropped"):
        store.drop_role("public")
    with pytest.raises(ObjectAlreadyExists, match="Role already exists: a"):
        store.create_role("a", "root")


def test_drop_role_hands_owned_objects_to_root_and_ends_grants(auth: Authorizer) -> None:
    store = auth.store
    store.create_role("team", "root")
    store.grant_role("team", ALICE, "root")
    store.set_owner(TABLE, T1, Principal(ROLE, "team"))
    store.grant(STAGE, "landing", ["READ"], Principal(ROLE, "team"), "root")
    assert auth.allows_stage(auth.principals("alice"), "landing", "READ", "root")
    assert store.drop_role("team") == [ALICE]
    assert store.owner(TABLE, T1) == Principal(USER, "root")
    assert not auth.allows_stage(auth.principals("alice"), "landing", "READ", "root")
    assert Principal(ROLE, "team") not in auth.principals("alice")


def test_ownership_to_public_is_refused(auth: Authorizer) -> None:
    with pytest.raises(StatementRejected, match="Ownership cannot be granted to role public"):
        auth.store.set_owner(TABLE, T1, Principal(ROLE, "public"))


def test_all_expands_at_grant_time_and_unknown_privileges_are_named() -> None:
    assert expand_privileges(TABLE, ["ALL"]) == ("SELECT", "INSERT", "UPDATE", "DELETE", "ALTER", "DROP")
    assert expand_privileges(SCHEMA, ["usage", "CREATE"]) == ("USAGE", "CREATE")
    with pytest.raises(StatementRejected, match="Privilege READ does not apply to a table grant"):
        expand_privileges(TABLE, ["READ"])


def test_migration_from_the_grant_tables_of_before_roles(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE users (name VARCHAR PRIMARY KEY, password_hash VARCHAR NOT NULL, "
        "is_admin BOOLEAN NOT NULL DEFAULT false, created_on TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    con.execute("CREATE TABLE stage_grants (stage VARCHAR, grantee VARCHAR, privilege VARCHAR)")
    con.execute("CREATE TABLE global_grants (grantee VARCHAR, privilege VARCHAR)")
    con.execute("INSERT INTO users VALUES ('root', 'h', true, now()), ('alice', 'h', false, now())")
    con.execute("INSERT INTO stage_grants VALUES ('landing', 'alice', 'READ')")
    con.execute("INSERT INTO global_grants VALUES ('alice', 'CREATE STAGE')")
    con.close()
    for _ in range(2):  # idempotent: the second start finds nothing more to move
        db = SecurityDatabase(path)
        auth = Authorizer(PrivilegeStore(db))
        tables = {r[0] for r in db.rows("SELECT table_name FROM duckdb_tables()")}
        assert not tables & {"stage_grants", "global_grants"}
        assert "is_admin" not in {r[0] for r in db.rows("SELECT column_name FROM duckdb_columns()")}
        alice = auth.principals("alice")
        assert auth.allows_stage(alice, "landing", "READ", "root")
        assert not auth.allows_stage(alice, "landing", "WRITE", "root")
        assert auth.allows_global(alice, "CREATE STAGE")
        assert auth.is_admin(auth.principals("root")) and not auth.is_admin(alice)
        assert {r[0] for r in db.rows("SELECT name FROM roles")} == {"account_admin", "public"}
        assert sorted(db.rows("SELECT privilege FROM object_grants WHERE object_kind = 'schema'")) == [
            ("CREATE",),
            ("USAGE",),
        ]
        db.close()
