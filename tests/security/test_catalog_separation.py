"""The user-facing DuckDB instance holds no prize (issue 11, item 4): no password hash, no grant,
no plain external-stage secret.

DuckDB lets an instance read its own database file even with external access off, so these tests
read the main database file exactly as a user who slipped past the guard could (``read_blob`` on
the user-facing instance), and check that the security database is out of that instance's reach.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import duckdb
import pytest

from engine.catalog import passwords
from flight.app import RunningServer
from tests.conftest import ROOT_PASSWORD, _start, connect
from tests.e2e.stage_helpers import execute, put, query
from tests.s3 import MotoServer, make_bucket

ARGON2_PREFIX = b"$argon2id$"


def _own_file_bytes(server: RunningServer) -> bytes:
    """The main database file and WAL as the user-facing instance itself can read them."""
    cur = server.engine.db.cursor()
    try:
        cur.execute("CHECKPOINT")
        paths = [server.config.engine_config().database_path]
        wal = server.engine.db.wal_path
        if wal.exists():
            paths.append(wal)
        read = "SELECT content FROM read_blob(?)"
        return b"".join(cur.execute(read, [str(p)]).fetchone()[0] for p in paths)
    finally:
        cur.close()


def _stored_connection(server: RunningServer, stage: str) -> str:
    [(connection,)] = server.engine.db.security.rows("SELECT connection FROM stages WHERE name = ?", [stage])
    return str(connection)


def test_main_database_file_holds_no_password_hash(server: RunningServer, root_conn: Any) -> None:
    execute(root_conn, "CREATE USER sep_hash IDENTIFIED BY 'pw-sep-hash'")
    execute(root_conn, "CREATE STAGE sep_granted")
    execute(root_conn, "GRANT READ ON STAGE sep_granted TO sep_hash")
    assert ARGON2_PREFIX not in _own_file_bytes(server)
    # The hashes are there, in the security database.
    with server.engine.db.security.cursor() as cur:
        hashes = [r[0] for r in cur.execute("SELECT password_hash FROM users").fetchall()]
    assert len(hashes) >= 2 and all(h.startswith("$argon2id$") for h in hashes)
    execute(root_conn, "DROP STAGE sep_granted")
    execute(root_conn, "DROP USER sep_hash")


def test_security_database_is_out_of_the_user_instance_reach(server: RunningServer) -> None:
    security_path = server.engine.db.security.path
    assert security_path.exists()
    cur = server.engine.db.cursor()  # the instance user SQL runs on, without the guard in front
    try:
        paths = [r[0] for r in cur.execute("SELECT path FROM duckdb_databases()").fetchall()]
        assert str(security_path) not in paths
        assert not any(p and p.endswith("security.duckdb") for p in paths)
        tables = {r[0] for r in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert not tables & {"users", "stage_grants", "global_grants", "url_generations"}
        with pytest.raises(duckdb.PermissionException, match="file system operations are disabled"):
            cur.execute("SELECT content FROM read_blob(?)", [str(security_path)])
        # Refused either way: the file is in use by the other instance (DuckDB checks that first),
        # and external access is off.
        with pytest.raises(duckdb.Error, match="already attached|Permission"):
            cur.execute(f"ATTACH '{security_path}' AS sec")
        names = {r[0] for r in cur.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
        assert "sec" not in names
        key_file = server.engine.config.server_key_path
        with pytest.raises(duckdb.PermissionException, match="file system operations are disabled"):
            cur.execute("SELECT content FROM read_blob(?)", [str(key_file)])
    finally:
        cur.close()
    assert os.stat(server.engine.config.server_key_path).st_mode & 0o777 == 0o600


# -- old data dirs ---------------------------------------------------------------------------------

_OLD_LAYOUT = [
    "CREATE SCHEMA __stageflight",
    """CREATE TABLE __stageflight.users (name VARCHAR PRIMARY KEY, password_hash VARCHAR NOT NULL,
        is_admin BOOLEAN NOT NULL DEFAULT false, created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
    """CREATE TABLE __stageflight.stages (name VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, url VARCHAR,
        file_format VARCHAR NOT NULL DEFAULT '{}', connection VARCHAR NOT NULL DEFAULT '{}', comment VARCHAR,
        creator VARCHAR, created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
    """CREATE TABLE __stageflight.stage_grants (stage VARCHAR NOT NULL, grantee VARCHAR NOT NULL,
        privilege VARCHAR NOT NULL, PRIMARY KEY (stage, grantee, privilege))""",
    """CREATE TABLE __stageflight.global_grants (grantee VARCHAR NOT NULL, privilege VARCHAR NOT NULL,
        PRIMARY KEY (grantee, privilege))""",
]
LEGACY_SECRET = "LegacySecretValue-8c1f"


def _old_rows(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "INSERT INTO __stageflight.users VALUES ('root', ?, true, now()), ('legacy_alice', ?, false, now())",
        [passwords.hash_password(ROOT_PASSWORD), passwords.hash_password("pw-legacy")],
    )
    connection = json.dumps({"ACCESS_KEY_ID": "AKIALEGACY", "SECRET_ACCESS_KEY": LEGACY_SECRET})
    con.execute(
        "INSERT INTO __stageflight.stages (name, kind, url, connection, creator) VALUES "
        "('legacy_s', 'Internal', NULL, '{}', 'root'), "
        "('legacy_ext', 'External', 's3://bucket/p/', ?, 'root')",
        [connection],
    )
    con.execute("INSERT INTO __stageflight.stage_grants VALUES ('legacy_s', 'legacy_alice', 'READ')")
    con.execute("INSERT INTO __stageflight.global_grants VALUES ('legacy_alice', 'CREATE STAGE')")


@pytest.fixture
def old_data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "old"
    data_dir.mkdir()
    con = duckdb.connect(str(data_dir / "stageflight.duckdb"))
    for ddl in _OLD_LAYOUT:
        con.execute(ddl)
    _old_rows(con)
    con.close()
    return data_dir


@pytest.fixture
def run(old_data_dir: Path) -> Iterator[Any]:
    running: list[RunningServer] = []

    def start() -> RunningServer:
        if running:
            running.pop().stop()
        running.append(_start(old_data_dir))
        return running[-1]

    yield start
    for server in running:
        server.stop()


def _check_migrated(server: RunningServer) -> None:
    with connect(server, user="legacy_alice", password="pw-legacy") as alice:
        put(server_conn := connect(server), "@legacy_s/f.csv", b"1\n")
        server_conn.close()
        assert [r["name"] for r in query(alice, "LIST @legacy_s")] == ["f.csv"]  # the grant moved
        execute(alice, "CREATE STAGE legacy_new")  # so did CREATE STAGE
        execute(alice, "DROP STAGE legacy_new")
    with connect(server) as root:
        assert [r["name"] for r in query(root, "SHOW USERS")] == ["legacy_alice", "root"]
        [row] = query(root, "DESC STAGE legacy_ext")
    assert json.loads(row["storage_params"])["SECRET_ACCESS_KEY"] == "Le***1f"
    assert server.engine.stage_catalog.get("legacy_ext").connection["SECRET_ACCESS_KEY"] == LEGACY_SECRET
    # The stage moved to the security database, where only ciphertext is kept. (DuckDB does not
    # zero the blocks the old rows occupied: their bytes stay in the file until reused; see the
    # README on upgrading.)
    stored = _stored_connection(server, "legacy_ext")
    assert stored.startswith("enc:v1:") and LEGACY_SECRET not in stored
    cur = server.engine.db.cursor()
    try:
        left = cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = '__stageflight' ORDER BY 1"
        ).fetchall()
    finally:
        cur.close()
    assert "load_history" in {r[0] for r in left}
    assert not {"users", "stage_grants", "global_grants", "stages", "file_formats"} & {r[0] for r in left}


def test_old_layout_moves_to_the_security_database_and_seals_secrets(run: Any) -> None:
    _check_migrated(run())
    _check_migrated(run())  # a second start finds nothing to move and changes nothing


def test_migration_interrupted_after_the_copy_completes_on_the_next_start(
    run: Any, old_data_dir: Path
) -> None:
    run().stop()
    # As if the server had died after copying into the security database, before dropping the old
    # tables: both hold the rows.
    con = duckdb.connect(str(old_data_dir / "stageflight.duckdb"))
    for ddl in _OLD_LAYOUT[1:2] + _OLD_LAYOUT[3:]:
        con.execute(ddl)
    con.execute(
        "INSERT INTO __stageflight.users VALUES ('root', ?, true, now()), ('legacy_alice', ?, false, now())",
        [passwords.hash_password(ROOT_PASSWORD), passwords.hash_password("pw-legacy")],
    )
    con.execute("INSERT INTO __stageflight.stage_grants VALUES ('legacy_s', 'legacy_alice', 'READ')")
    con.execute("INSERT INTO __stageflight.global_grants VALUES ('legacy_alice', 'CREATE STAGE')")
    con.close()
    _check_migrated(run())


# -- external stage credentials --------------------------------------------------------------------

SECRET = "SealedSecret-4e9d-" + "x" * 8


def _allowed(moto: MotoServer) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(moto.endpoint)
    return f"{parts.hostname}:{parts.port}"


def _create_ext(conn: Any, moto: MotoServer, bucket: str) -> None:
    execute(
        conn,
        f"CREATE STAGE sealed URL = 's3://{bucket}/in/' CONNECTION = (ENDPOINT_URL = '{moto.endpoint}', "
        f"ACCESS_KEY_ID = '{moto.access_key}', SECRET_ACCESS_KEY = '{SECRET}', REGION = '{moto.region}')",
    )


@pytest.mark.s3
def test_external_stage_secret_is_stored_sealed(tmp_path: Path, moto_s3: MotoServer) -> None:
    server = _start(tmp_path / "d", allowed_endpoints=_allowed(moto_s3))
    try:
        with connect(server) as root:
            _create_ext(root, moto_s3, make_bucket(moto_s3))
            put(root, "@sealed/a.csv", b"1\n")
            assert [r["name"] for r in query(root, "LIST @sealed")] == ["a.csv"]
            [row] = query(root, "DESC STAGE sealed")
            assert json.loads(row["storage_params"])["SECRET_ACCESS_KEY"] == "Se***xx"
        assert SECRET.encode() not in _own_file_bytes(server)
        stored = _stored_connection(server, "sealed")
        assert stored.startswith("enc:v1:") and moto_s3.access_key not in stored
    finally:
        server.stop()


@pytest.mark.s3
def test_a_changed_server_key_fails_that_stage_only(tmp_path: Path, moto_s3: MotoServer) -> None:
    data_dir = tmp_path / "d"
    server = _start(data_dir, allowed_endpoints=_allowed(moto_s3))
    with connect(server) as root:
        _create_ext(root, moto_s3, make_bucket(moto_s3))
        execute(root, "CREATE STAGE plain_one")
    server.stop()
    key = data_dir / "server.key"
    key.unlink()
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, secrets.token_bytes(32))
    os.close(fd)
    server = _start(data_dir, allowed_endpoints=_allowed(moto_s3))
    try:
        with connect(server) as root:
            message = "cannot decrypt credentials of stage sealed: server key changed?"
            for sql in ("LIST @sealed", "SELECT * FROM @sealed/a.csv", "PRESIGN @sealed/a.csv"):
                with pytest.raises(dbapi.Error, match=message.replace("?", "[?]")):
                    query(root, sql)
            # The stage is still there to see and to drop; other stages are unaffected.
            [row] = query(root, "DESC STAGE sealed")
            assert json.loads(row["storage_params"]) == {"error": message}
            assert {r["name"] for r in query(root, "SHOW STAGES")} >= {"sealed", "plain_one"}
            assert query(root, "LIST @plain_one") == []
            execute(root, "DROP STAGE sealed")
            assert [r["name"] for r in query(root, "SHOW STAGES")] == ["plain_one"]
    finally:
        server.stop()
