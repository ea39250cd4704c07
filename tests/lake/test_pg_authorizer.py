"""The Authorizer's rules (tests/engine/test_authorizer.py) again, on the PostgreSQL store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("psycopg", reason="the PostgreSQL catalog needs psycopg: pip install 'psycopg[binary]'")

from engine.catalog.security_pg import PostgresSecurityDatabase  # noqa: E402
from tests.engine.test_authorizer import (  # noqa: F401  (collected here again, on PostgreSQL)
    auth,
    test_drop_role_hands_owned_objects_to_root_and_ends_grants,
    test_ownership_to_public_is_refused,
    test_principals_close_over_the_hierarchy_and_include_public,
    test_public_may_create_in_main_until_revoked,
    test_revoke_takes_effect_through_the_version_cache,
    test_role_cycles_and_builtin_roles_are_refused,
    test_table_grant_schema_grant_global_grant_owner_and_admin,
    test_visible_tables_keeps_owned_and_granted_rows,
)


@pytest.fixture
def security(pg_url: str) -> Iterator[PostgresSecurityDatabase]:
    db = PostgresSecurityDatabase(pg_url)
    with db.transaction() as cur:
        for name in ("root", "alice", "bob"):
            cur.execute("INSERT INTO users (name, password_hash) VALUES (?, 'x')", [name])
        cur.execute("INSERT INTO role_grants VALUES ('account_admin', 'user', 'root', 'root')")
    yield db
    db.close()
