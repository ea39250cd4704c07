"""PostgresSecurityDatabase on a real throwaway PostgreSQL: the rules the engine relies on."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

pytest.importorskip("psycopg", reason="the PostgreSQL catalog needs psycopg: pip install 'psycopg[binary]'")

from engine.catalog.authorizer import Authorizer  # noqa: E402
from engine.catalog.privileges import ROLE, USER, Principal, PrivilegeStore  # noqa: E402
from engine.catalog.security_pg import PostgresSecurityDatabase  # noqa: E402
from engine.catalog.security_store import CatalogUnavailable, DuplicateRow  # noqa: E402
from engine.config import CatalogUrl  # noqa: E402
from engine.errors import ObjectAlreadyExists  # noqa: E402
from tests.pg import PgCluster  # noqa: E402


@pytest.fixture
def stores(pg_url: str) -> Iterator[tuple[PostgresSecurityDatabase, PostgresSecurityDatabase]]:
    """Two stores on one schema: what two server processes hold."""
    a = PostgresSecurityDatabase(pg_url)
    b = PostgresSecurityDatabase(pg_url)
    yield a, b
    a.close()
    b.close()


def test_tables_and_builtins_are_made_once(stores: tuple[PostgresSecurityDatabase, ...]) -> None:
    a, b = stores
    assert sorted(r[0] for r in a.rows("SELECT name FROM roles")) == ["account_admin", "public"]
    assert sorted(b.rows("SELECT privilege FROM object_grants WHERE object_kind = 'schema'")) == [
        ("CREATE",),
        ("USAGE",),
    ]
    constraints = a.rows(
        "SELECT table_name, constraint_type FROM information_schema.table_constraints "
        "WHERE table_schema = current_schema() AND constraint_type = 'PRIMARY KEY' ORDER BY 1"
    )
    assert [r[0] for r in constraints] == [
        "catalog_version",
        "file_formats",
        "login_failures",
        "object_grants",
        "owners",
        "role_grants",
        "roles",
        "server_secrets",
        "stages",
        "url_generations",
        "users",
    ]


def test_two_stores_starting_at_once_both_open(pg_cluster: PgCluster, pg_url: str) -> None:
    schema = pg_cluster.new_schema()
    url = pg_url.rsplit("=", 1)[0] + "=" + schema
    opened: list[PostgresSecurityDatabase] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(PostgresSecurityDatabase(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert opened[0].rows("SELECT count(*) FROM roles") == [(2,)]
    finally:
        for store in opened:
            store.close()
        pg_cluster.drop_schema(schema)


def test_a_grant_on_one_store_is_seen_by_the_other(stores: tuple[PostgresSecurityDatabase, ...]) -> None:
    a, b = stores
    with a.transaction() as cur:
        cur.execute("INSERT INTO users (name, password_hash) VALUES (?, 'x')", ["alice"])
    store_a, auth_b = PrivilegeStore(a), Authorizer(PrivilegeStore(b))
    before = b.version()
    store_a.create_role("analyst", "root")
    store_a.grant_role("analyst", Principal(USER, "alice"), "root")
    store_a.grant("stage", "landing", ["READ"], Principal(ROLE, "analyst"), "root")
    assert b.version() > before
    alice = auth_b.principals("alice")
    assert Principal(ROLE, "analyst") in alice
    assert auth_b.allows_stage(alice, "landing", "READ", "root")
    assert not auth_b.allows_stage(alice, "landing", "WRITE", "root")
    with pytest.raises(ObjectAlreadyExists, match="Role already exists: analyst"):
        PrivilegeStore(b).create_role("analyst", "root")


def test_the_same_user_made_on_two_stores_at_once_is_one_row(
    stores: tuple[PostgresSecurityDatabase, ...],
) -> None:
    a, b = stores
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def insert(store: PostgresSecurityDatabase) -> None:
        with store.cursor():
            pass
        barrier.wait()
        try:
            with store.transaction() as cur:
                cur.execute("INSERT INTO users (name, password_hash) VALUES (?, 'x')", ["bob"])
            outcomes.append("made")
        except DuplicateRow:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=insert, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["duplicate", "made"]
    assert a.rows("SELECT count(*) FROM users WHERE name = 'bob'") == [(1,)]


def test_generations_and_shared_secret(stores: tuple[PostgresSecurityDatabase, ...]) -> None:
    a, b = stores
    with a.transaction() as cur:
        a.bump(cur, "user/alice")
        a.bump(cur, "user/alice")
    assert b.generations(["user/alice", "user/nobody"]) == {"user/alice": 2, "user/nobody": 0}
    assert a.shared_secret("k", "first") == "first"
    assert b.shared_secret("k", "second") == "first"


def test_a_restart_of_postgresql_is_survived(
    pg_cluster: PgCluster, stores: tuple[PostgresSecurityDatabase, ...]
) -> None:
    a, _ = stores
    assert a.version() >= 0
    pg_cluster.restart()
    assert a.rows("SELECT count(*) FROM roles") == [(2,)]  # reconnected, statement retried
    pg_cluster.restart()
    with a.transaction() as cur:  # BEGIN on the dead connection: reconnected before any work
        a.bump_version(cur)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://sf:secret-pw@127.0.0.1:5432/db", "must not contain a password"),
        ("mysql://sf@127.0.0.1/db", "must be a postgresql:// URL"),
        ("postgresql://127.0.0.1:5432/db", "needs a user, host and database"),
        ("postgresql://sf@127.0.0.1:5432/db?schema=a;drop", "must be letters, digits"),
        ("postgresql://sf@127.0.0.1:5432/db?sslmode=disable", "unknown parameter"),
    ],
)
def test_bad_catalog_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        CatalogUrl.parse(url)
    assert "secret-pw" not in str(caught.value)


def test_a_wrong_password_is_a_clear_error_without_the_password(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "wrong-pw-123")
    with pytest.raises(CatalogUnavailable, match="Cannot reach the catalog postgresql://sf@") as caught:
        PostgresSecurityDatabase(pg_url)
    assert "wrong-pw-123" not in str(caught.value)
    assert "password authentication failed" in str(caught.value)


def test_a_role_without_create_on_the_database_uses_a_schema_made_for_it(
    pg_cluster: PgCluster, pg_url: str
) -> None:
    """init-lake style: an operator makes the schema; the server's role may not create schemas."""
    with pg_cluster.admin() as con:
        con.execute("REVOKE CREATE ON DATABASE stageflight FROM sf")
        con.execute("ALTER DATABASE stageflight OWNER TO postgres")
    try:
        store = PostgresSecurityDatabase(pg_url)  # pg_url's schema exists, owned by sf
        try:
            assert store.version() >= 0
        finally:
            store.close()
        other = pg_url.rsplit("=", 1)[0] + "=t_not_made"
        with pytest.raises(
            CatalogUnavailable, match="Cannot set up the catalog .*permission denied for database"
        ):
            PostgresSecurityDatabase(other)
    finally:
        with pg_cluster.admin() as con:
            con.execute("ALTER DATABASE stageflight OWNER TO sf")
