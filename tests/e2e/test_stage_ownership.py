"""CREATE / DROP STAGE never touch an existing stage's files unless its owner (or root) asks.

Root owns a stage holding a file; alice may create stages. Whatever alice's CREATE says, root's
file stays. Through the real server over ADBC, files written by COPY INTO @stage (unload).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import pytest

from flight.app import RunningServer
from tests.conftest import connect
from tests.e2e.stage_helpers import execute, put, query


def _fresh_name() -> str:
    return f"own_{uuid.uuid4().hex[:10]}"


def _unload(conn: Any, stage: str, tag: str) -> None:
    query(conn, f"COPY INTO @{stage}/{tag}/ FROM (SELECT 1 AS one) FILE_FORMAT = (TYPE = CSV)")


def _files(conn: Any, stage: str) -> list[str]:
    return sorted(r["name"] for r in query(conn, f"LIST @{stage}"))


@pytest.fixture
def roots_stage(root_conn: Any) -> Any:
    """A stage owned by root holding one unloaded file; yields (name, its file names)."""
    name = _fresh_name()
    execute(root_conn, f"CREATE STAGE {name} COMMENT = 'roots'")
    _unload(root_conn, name, "root")
    files = _files(root_conn, name)
    assert len(files) == 1 and files[0].startswith("root/")
    yield name, files
    execute(root_conn, f"DROP STAGE IF EXISTS {name}")


@pytest.fixture
def creator(root_conn: Any, alice: Any) -> Any:
    execute(root_conn, f"GRANT CREATE STAGE ON *.* TO {alice.user_name}")
    return alice


def test_create_over_an_existing_stage_refuses_and_keeps_its_files(root_conn, creator, roots_stage):
    name, files = roots_stage
    with pytest.raises(dbapi.Error, match=f"Stage already exists: @{name}"):
        execute(creator, f"CREATE STAGE {name}")
    assert _files(root_conn, name) == files
    # Not even the owner's own plain CREATE touches the files.
    with pytest.raises(dbapi.Error, match=f"Stage already exists: @{name}"):
        execute(root_conn, f"CREATE STAGE {name}")
    assert _files(root_conn, name) == files


def test_create_if_not_exists_leaves_the_stage_alone(root_conn, creator, roots_stage):
    name, files = roots_stage
    execute(creator, f"CREATE STAGE IF NOT EXISTS {name} COMMENT = 'alices'")
    assert _files(root_conn, name) == files
    [row] = query(root_conn, f"DESC STAGE {name}")
    assert (row["creator"], row["comment"]) == ("root", "roots")


def test_replace_by_a_non_owner_is_refused(root_conn, creator, roots_stage):
    name, files = roots_stage
    with pytest.raises(
        dbapi.Error, match=f"Permission denied: only the owner of @{name} or root may replace it"
    ):
        execute(creator, f"CREATE OR REPLACE STAGE {name} COMMENT = 'alices'")
    assert _files(root_conn, name) == files
    [row] = query(root_conn, f"DESC STAGE {name}")
    assert (row["creator"], row["comment"]) == ("root", "roots")


def test_drop_by_a_non_owner_is_refused(root_conn, creator, roots_stage):
    name, files = roots_stage
    with pytest.raises(dbapi.Error, match=f"only the owner of @{name} or root may drop it"):
        execute(creator, f"DROP STAGE {name}")
    assert _files(root_conn, name) == files


def test_root_may_replace_and_drop_alices_stage(root_conn, creator, bob):
    name = _fresh_name()
    execute(creator, f"CREATE STAGE {name}")
    _unload(creator, name, "alice")
    execute(creator, f"GRANT READ ON STAGE {name} TO {bob.user_name}")
    assert len(_files(bob, name)) == 1
    execute(root_conn, f"CREATE OR REPLACE STAGE {name} COMMENT = 'taken over'")
    assert _files(root_conn, name) == []
    assert query(root_conn, f"DESC STAGE {name}")[0]["creator"] == "root"
    # Alice's grant does not carry over to root's stage.
    with pytest.raises(dbapi.Error, match=f"privilege READ is required on stage @{name}"):
        _files(bob, name)
    execute(root_conn, f"DROP STAGE {name}")


def test_a_recreated_stage_never_shows_leftovers(server: RunningServer, root_conn):
    """Files under a dropped stage's prefix (a presigned upload that landed after the DROP) are
    wiped when the name is created again, since no stage owns them."""
    name = _fresh_name()
    execute(root_conn, f"CREATE STAGE {name}")
    put(root_conn, f"@{name}/before.csv", b"1\n")
    execute(root_conn, f"DROP STAGE {name}")
    leftover = server.config.data_dir / "storage" / "stage" / "internal" / name / "late.csv"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"late\n")
    execute(root_conn, f"CREATE STAGE {name}")
    assert _files(root_conn, name) == []
    execute(root_conn, f"DROP STAGE {name}")


def _race(clients: list[Any], work: Callable[[Any], str]) -> list[str]:
    """Run ``work`` on every client at once (one thread and connection each); return the outcomes."""
    barrier = threading.Barrier(len(clients))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(conn: Any) -> None:
        barrier.wait()
        try:
            outcome = work(conn)
        except dbapi.Error as exc:
            outcome = f"error: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(not t.is_alive() for t in threads)
    return outcomes


@pytest.fixture
def racers(server: RunningServer, root_conn: Any, make_user: Callable[[], tuple[str, str]]) -> Any:
    """Eight connections: four as root, four as users allowed to create stages."""
    conns = [connect(server) for _ in range(4)]
    for _ in range(4):
        user, password = make_user()
        execute(root_conn, f"GRANT CREATE STAGE ON *.* TO {user}")
        conns.append(connect(server, user=user, password=password))
    yield conns
    for conn in conns:
        conn.close()


def test_concurrent_creates_one_wins_and_keeps_its_files(root_conn, racers):
    for _ in range(5):
        name = _fresh_name()

        def create_then_unload(conn: Any, name: str = name) -> str:
            execute(conn, f"CREATE STAGE {name}")
            _unload(conn, name, "winner")
            return "created"

        outcomes = _race(racers, create_then_unload)
        assert outcomes.count("created") == 1, outcomes
        losses = [o for o in outcomes if o != "created"]
        assert all(f"Stage already exists: @{name}" in o for o in losses), losses
        files = _files(root_conn, name)
        assert len(files) == 1 and files[0].startswith("winner/"), files
        execute(root_conn, f"DROP STAGE {name}")


def test_concurrent_creates_over_an_existing_stage_keep_its_files(root_conn, racers, roots_stage):
    name, files = roots_stage
    untouching = [f"CREATE STAGE {name}", f"CREATE STAGE IF NOT EXISTS {name}"]
    # Root may replace its own stage, so only the non-owners also try CREATE OR REPLACE.
    by_conn = {id(c): untouching for c in racers[:4]}
    by_conn.update({id(c): [*untouching, f"CREATE OR REPLACE STAGE {name}"] for c in racers[4:]})

    def attempt(conn: Any) -> str:
        errors = []
        for sql in by_conn[id(conn)]:
            try:
                execute(conn, sql)
            except dbapi.Error as exc:
                errors.append(str(exc))
        expected = ("Stage already exists", "Permission denied: only the owner")
        return "ok" if all(any(e in err for e in expected) for err in errors) else f"unexpected: {errors}"

    for _ in range(5):
        assert _race(racers, attempt) == ["ok"] * len(racers)
        assert _files(root_conn, name) == files
