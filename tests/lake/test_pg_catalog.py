"""Two real server processes sharing one PostgreSQL security catalog (issue 14, PR 11).

Each node keeps its own data dir (tables, stages and load history stay local until the lake, PR 12);
users, roles and grants live in the shared catalog, so what one node changes the other sees.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager.dbapi as dbapi
import pyarrow.flight as flight
import pytest

from flight import commands as cmd
from tests.e2e.stage_helpers import execute, query
from tests.flight.rawclient import RawClient
from tests.pg import PgCluster
from tests.serverproc import ROOT_PASSWORD, ServerProcess, server_process

# How long a node may trust a user's token generation it read (flight.auth.SharedTokens).
REVOCATION_WAIT = 2.5


@pytest.fixture(scope="module")
def nodes(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ...]]:
    schema = pg_cluster.new_schema()
    base = tmp_path_factory.mktemp("nodes")
    with pytest.MonkeyPatch.context() as mp, ExitStack() as stack:
        mp.setenv("PGPASSWORD", pg_cluster.role_password)
        mp.delenv("PGPASSFILE", raising=False)
        url = pg_cluster.url(schema)
        # Both start at the same moment on an empty schema: tables, built-in roles and root are
        # made once, and neither node fails on the other's rows.
        managers = [server_process(base / name, "--catalog", url) for name in ("a", "b")]
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(m.__enter__) for m in managers]
            started = [f.result() for f in futures]
        for manager in managers:
            stack.push(manager.__exit__)
        yield started[0], started[1]
    pg_cluster.drop_schema(schema)


def _connect(node: ServerProcess, user: str = "root", password: str = ROOT_PASSWORD) -> Any:
    return flightsql.connect(node.uri, db_kwargs={"username": user, "password": password}, autocommit=True)


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def roots(nodes: tuple[ServerProcess, ...]) -> Iterator[tuple[Any, Any]]:
    a, b = nodes
    with _connect(a) as ra, _connect(b) as rb:
        yield ra, rb


def test_nodes_started_together_share_one_root(
    nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]
) -> None:
    # Both logged root in (the roots fixture); each sees the same one root, an admin.
    for conn in roots:
        [root] = [r for r in query(conn, "SHOW USERS") if r["name"] == "root"]
        assert root["is_admin"] is True
    logs = nodes[0].log_text() + nodes[1].log_text()
    assert "Traceback" not in logs and "duplicate key" not in logs


def test_a_user_made_on_a_logs_in_on_b(nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]) -> None:
    root_a, _ = roots
    user = _name("carol")
    execute(root_a, f"CREATE USER {user} IDENTIFIED BY 'pw-1'")
    with _connect(nodes[1], user, "pw-1") as conn:
        assert query(conn, "SELECT current_user AS u") == [{"u": user}]
    assert user in {r["name"] for r in query(roots[1], "SHOW USERS")}


def test_a_password_changed_on_a_is_refused_on_b(
    nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]
) -> None:
    root_a, _ = roots
    user = _name("dave")
    execute(root_a, f"CREATE USER {user} IDENTIFIED BY 'old-pw'")
    with _connect(nodes[1], user, "old-pw") as conn:
        assert query(conn, "SELECT 1 AS one") == [{"one": 1}]
    execute(root_a, f"ALTER USER {user} IDENTIFIED BY 'new-pw'")
    with pytest.raises(dbapi.Error, match="Invalid user name or password"):
        _connect(nodes[1], user, "old-pw").close()
    with _connect(nodes[1], user, "new-pw") as conn:
        assert query(conn, "SELECT 2 AS two") == [{"two": 2}]


def test_a_role_and_grant_made_on_a_show_on_b(
    nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]
) -> None:
    root_a, root_b = roots
    user, role = _name("erin"), _name("analyst")
    execute(root_a, f"CREATE USER {user} IDENTIFIED BY 'pw'")
    execute(root_a, f"CREATE ROLE {role}")
    execute(root_a, f"GRANT CREATE STAGE ON *.* TO ROLE {role}")
    execute(root_a, f"GRANT ROLE {role} TO '{user}'")
    grants = {
        (r["privileges"], r["grant_to"], r["name"]) for r in query(root_b, f"SHOW GRANTS FOR ROLE {role}")
    }
    assert ("CREATE STAGE", "ROLE", role) in grants
    with _connect(nodes[1], user, "pw") as conn:
        assert role in {r["name"] for r in query(conn, "SHOW ROLES")}
        # The grant works on B: the user may create a stage there.
        execute(conn, f"CREATE STAGE {_name('s')}")
    execute(root_a, f"REVOKE ROLE {role} FROM USER {user}")
    with _connect(nodes[1], user, "pw") as conn:
        assert {r["name"] for r in query(conn, "SHOW ROLES")} == {"public"}
        with pytest.raises(dbapi.Error, match="(?i)permission denied"):
            execute(conn, f"CREATE STAGE {_name('s')}")


def test_the_same_user_created_on_both_nodes_at_once(
    nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]
) -> None:
    user = _name("frank")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def create(conn: Any) -> None:
        barrier.wait()
        try:
            execute(conn, f"CREATE USER {user} IDENTIFIED BY 'pw'")
            outcomes.append("created")
        except dbapi.Error as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=create, args=(conn,)) for conn in roots]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "created" in outcomes, outcomes
    [other] = [o for o in outcomes if o != "created"]
    assert f"User already exists: {user}" in other
    assert [r["name"] for r in query(roots[0], "SHOW USERS")].count(user) == 1


def test_drop_user_on_a_ends_the_users_token_on_b(
    nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]
) -> None:
    root_a, _ = roots
    user = _name("gina")
    execute(root_a, f"CREATE USER {user} IDENTIFIED BY 'pw'")
    client = RawClient(nodes[1].uri, user, "pw")
    try:
        assert client.query("SELECT 7 AS n").to_pylist() == [{"n": 7}]
        execute(root_a, f"DROP USER {user}")
        time.sleep(REVOCATION_WAIT)
        with pytest.raises(flight.FlightUnauthenticatedError, match="Invalid or expired token"):
            client.query("SELECT 8 AS n")
    finally:
        client.close()


def test_a_token_issued_by_a_works_on_b_until_the_password_changes(
    nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]
) -> None:
    root_a, _ = roots
    user = _name("hank")
    execute(root_a, f"CREATE USER {user} IDENTIFIED BY 'pw'")
    on_a = RawClient(nodes[0].uri, user, "pw")
    on_b = flight.FlightClient(nodes[1].uri)
    try:
        assert on_a.token.startswith("Bearer sf1.")  # signed with the catalog's key
        descriptor = flight.FlightDescriptor.for_command(
            cmd.pack(cmd.CommandStatementQuery(query="SELECT current_user AS u"))
        )
        info = on_b.get_flight_info(descriptor, on_a.options)  # A's token, B's node
        assert on_b.do_get(info.endpoints[0].ticket, on_a.options).read_all().to_pylist() == [{"u": user}]
        execute(root_a, f"ALTER USER {user} IDENTIFIED BY 'pw2'")
        time.sleep(REVOCATION_WAIT)
        with pytest.raises(flight.FlightUnauthenticatedError, match="Invalid or expired token"):
            on_b.get_flight_info(descriptor, on_a.options)
        with pytest.raises(flight.FlightUnauthenticatedError, match="Invalid or expired token"):
            on_a.query("SELECT 1")
    finally:
        on_a.close()
        on_b.close()


def test_forged_tokens_are_refused(nodes: tuple[ServerProcess, ...]) -> None:
    client = flight.FlightClient(nodes[1].uri)
    try:
        for token in ("sf1.cm9vdA.0.0.AAAA", "sf1.cm9vdA.1.1.b64", "garbage"):
            options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
            with pytest.raises(flight.FlightUnauthenticatedError, match="Invalid or expired token"):
                list(client.list_actions(options))
    finally:
        client.close()


def test_a_postgresql_restart_mid_session_is_survived(
    pg_cluster: PgCluster, nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]
) -> None:
    root_a, root_b = roots
    user = _name("ivan")
    execute(root_a, f"CREATE USER {user} IDENTIFIED BY 'pw'")
    pg_cluster.restart()
    execute(root_a, f"ALTER USER {user} IDENTIFIED BY 'pw2'")  # a write, first statement after
    assert user in {r["name"] for r in query(root_b, "SHOW USERS")}
    with _connect(nodes[1], user, "pw2") as conn:
        assert query(conn, "SELECT 3 AS n") == [{"n": 3}]


def _logs_in(node: ServerProcess, user: str, password: str) -> bool:
    try:
        with _connect(node, user, password) as conn:
            return query(conn, "SELECT current_user AS u") == [{"u": user}]
    except dbapi.Error as exc:
        assert "Invalid user name or password" in str(exc)  # the same words, hashed or not
        return False


def test_wrong_passwords_count_on_every_node_together(
    nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]
) -> None:
    """Five wrong passwords (the default) in all, spread over both nodes, start the backoff on both:
    a guesser gets one allowance, not one per node."""
    a, b = nodes
    user = _name("guessed")
    execute(roots[0], f"CREATE USER {user} IDENTIFIED BY 'right-pw'")
    for node in (a, b, a, b, a):
        assert not _logs_in(node, user, "guess")
    assert not _logs_in(b, user, "right-pw")  # within the delay, refused unhashed
    assert not _logs_in(a, user, "right-pw")
    time.sleep(1.3)  # the first delay is 1 s, on PostgreSQL's clock
    assert _logs_in(b, user, "right-pw")
    # The success cleared the record for both nodes: four more wrong passwords do not block.
    for node in (a, b, a, b):
        assert not _logs_in(node, user, "guess")
    assert _logs_in(a, user, "right-pw")


def test_wrong_passwords_sent_at_once_to_both_nodes_add_up(
    nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]
) -> None:
    """Eight guesses at the same moment, four per node: each node alone would stay under the five
    that start the backoff; counted together in PostgreSQL (one atomic upsert each) they pass it."""
    a, b = nodes
    user = _name("rushed")
    execute(roots[0], f"CREATE USER {user} IDENTIFIED BY 'right-pw'")
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda node: _logs_in(node, user, "guess"), [a, b] * 4))
    assert outcomes == [False] * 8
    assert not _logs_in(a, user, "right-pw")
    assert not _logs_in(b, user, "right-pw")


def test_a_login_while_postgresql_is_down_is_told_so_and_works_once_it_is_back(
    pg_cluster: PgCluster, nodes: tuple[ServerProcess, ...], roots: tuple[Any, Any]
) -> None:
    a, _ = nodes
    user = _name("outage")
    execute(roots[0], f"CREATE USER {user} IDENTIFIED BY 'pw-outage'")
    with pg_cluster.admin() as pg:  # the test cluster runs without synchronous commit: keep the user
        pg.execute("CHECKPOINT")
    pg_cluster.stop()
    try:
        with pytest.raises(dbapi.Error) as refused:
            _connect(a, user, "pw-outage").close()
        assert "The catalog is unreachable: try again" in str(refused.value)
        assert "Traceback" not in str(refused.value)
    finally:
        pg_cluster.start()
    assert _logs_in(a, user, "pw-outage")
    assert "Traceback" not in a.log_text()
