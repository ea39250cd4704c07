"""An old data dir, whose main database holds the named stages and file formats, starts with them
moved into the security database: its stages (an external stage's sealed and plain credentials
too) and file formats work, the grants on them still hold, and the old tables are gone.

The old layout is made from a new one while the server is stopped: the rows go from
``security.duckdb`` back into the main database's ``__stageflight`` tables of the old release.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import adbc_driver_manager.dbapi as dbapi
import duckdb
import pytest

from flight.app import RunningServer
from tests.conftest import _start, connect
from tests.e2e.stage_helpers import execute, put, query
from tests.s3 import MotoServer, make_bucket, s3_client

# The old release's tables, as its catalog DDL made them.
_OLD_TABLES = {
    "stages": """CREATE TABLE __stageflight.stages (name VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL,
        url VARCHAR, file_format VARCHAR NOT NULL DEFAULT '{}', connection VARCHAR NOT NULL DEFAULT '{}',
        comment VARCHAR, creator VARCHAR, created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
    "file_formats": """CREATE TABLE __stageflight.file_formats (name VARCHAR PRIMARY KEY,
        options VARCHAR NOT NULL, creator VARCHAR, created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
}
_COLUMNS = {
    "stages": "name, kind, url, file_format, connection, comment, creator, created_on",
    "file_formats": "name, options, creator, created_on",
}
ALICE, BOB = ("mig_alice", "pw-mig-alice"), ("mig_bob", "pw-mig-bob")


def _connection(moto: MotoServer) -> str:
    return (
        f"CONNECTION = (ENDPOINT_URL = '{moto.endpoint}', ACCESS_KEY_ID = '{moto.access_key}', "
        f"SECRET_ACCESS_KEY = '{moto.secret_key}', REGION = '{moto.region}')"
    )


def _to_old_layout(data_dir: Path, moto: MotoServer, *, keep_copy: bool) -> None:
    """Put the stage and file-format rows where the old release kept them. ``keep_copy``: leave
    them in the security database too (a start that died after its copy, before the drop)."""
    security = duckdb.connect(str(data_dir / "security.duckdb"))
    try:
        rows = {t: security.execute(f"SELECT {c} FROM {t}").fetchall() for t, c in _COLUMNS.items()}
        if not keep_copy:
            for table in _COLUMNS:  # the old release's security database had no such tables
                security.execute(f"DROP TABLE {table}")
    finally:
        security.close()
    # A stage of a release from before sealing: its CONNECTION is plain JSON.
    plain = json.dumps(
        {
            "ENDPOINT_URL": moto.endpoint,
            "ACCESS_KEY_ID": moto.access_key,
            "SECRET_ACCESS_KEY": moto.secret_key,
            "REGION": moto.region,
        }
    )
    [ext] = [r for r in rows["stages"] if r[0] == "old_ext"]
    rows["stages"].append(("old_plain", ext[1], ext[2], "{}", plain, None, "root", ext[7]))
    main = duckdb.connect(str(data_dir / "stageflight.duckdb"))
    try:
        for table, ddl in _OLD_TABLES.items():
            main.execute(ddl)
            marks = ", ".join("?" for _ in _COLUMNS[table].split(","))
            main.executemany(f"INSERT INTO __stageflight.{table} VALUES ({marks})", rows[table])
    finally:
        main.close()


def _catalog_tables(server: RunningServer) -> set[str]:
    cur = server.engine.db.cursor()
    try:
        rows = cur.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = '__stageflight'")
        return {r[0] for r in rows.fetchall()}
    finally:
        cur.close()


def _check(server: RunningServer, moto: MotoServer) -> None:
    with connect(server) as root:
        assert [r["name"] for r in query(root, "SHOW STAGES")] == ["old_ext", "old_int", "old_plain"]
        # The sealed credentials open (moto checks the signature), the plain ones were sealed.
        assert [r["name"] for r in query(root, "LIST @old_ext")] == ["a.csv"]
        assert [r["name"] for r in query(root, "LIST @old_plain")] == ["a.csv"]
        [fmt] = [r for r in query(root, "SHOW FILE FORMATS") if r["name"] == "old_fmt"]
        assert "field_delimiter = ';'" in fmt["format_options"]
        execute(root, "CREATE OR REPLACE TABLE mig_t (i INT, s VARCHAR)")
        loaded = query(root, "COPY INTO mig_t FROM @old_ext FILE_FORMAT = (FORMAT_NAME = 'old_fmt')")
        assert [(r["File"], r["Rows_loaded"]) for r in loaded] == [("a.csv", 2)]
        assert query(root, "SELECT i, s FROM mig_t ORDER BY i") == [{"i": 1, "s": "x"}, {"i": 2, "s": "y"}]
        [row] = query(root, "DESC STAGE old_ext")
        assert json.loads(row["storage_params"])["ACCESS_KEY_ID"] != moto.access_key  # masked
    with connect(server, user=ALICE[0], password=ALICE[1]) as alice:
        assert [r["name"] for r in query(alice, "LIST @old_int")] == ["b.csv"]  # the grant holds
    with connect(server, user=BOB[0], password=BOB[1]) as bob:
        with pytest.raises(dbapi.Error, match="privilege READ is required on stage @old_int"):
            query(bob, "LIST @old_int")
        # The format is still alice's: bob may use it, not drop it.
        with pytest.raises(dbapi.Error, match="only the owner of file format old_fmt or root may drop"):
            execute(bob, "DROP FILE FORMAT old_fmt")
    assert not {"stages", "file_formats"} & _catalog_tables(server)
    stored = dict(server.engine.db.security.rows("SELECT name, connection FROM stages"))
    assert stored["old_ext"].startswith("enc:v1:") and stored["old_plain"].startswith("enc:v1:")
    assert moto.secret_key not in stored["old_plain"]


@pytest.mark.s3
@pytest.mark.parametrize("keep_copy", [False, True], ids=["old_layout", "copied_not_dropped"])
def test_an_old_data_dir_keeps_its_stages_and_file_formats(
    tmp_path: Path, moto_s3_auth: MotoServer, keep_copy: bool
) -> None:
    data_dir = tmp_path / "old"
    parts = urlsplit(moto_s3_auth.endpoint)
    allowed = f"{parts.hostname}:{parts.port}"
    server = _start(data_dir, allowed_endpoints=allowed)
    try:
        with connect(server) as root:
            for user, password in (ALICE, BOB):
                execute(root, f"CREATE USER {user} IDENTIFIED BY '{password}'")
            bucket = make_bucket(moto_s3_auth)
            execute(root, f"CREATE STAGE old_ext URL = 's3://{bucket}/in/' {_connection(moto_s3_auth)}")
            s3_client(moto_s3_auth).put_object(Bucket=bucket, Key="in/a.csv", Body=b"1;x\n2;y\n")
            execute(root, "CREATE STAGE old_int")
            put(root, "@old_int/b.csv", b"3;z\n")
            execute(root, f"GRANT READ ON STAGE old_int TO {ALICE[0]}")
        with connect(server, user=ALICE[0], password=ALICE[1]) as alice:
            execute(alice, "CREATE FILE FORMAT old_fmt TYPE = CSV FIELD_DELIMITER = ';'")
    finally:
        server.stop()
    _to_old_layout(data_dir, moto_s3_auth, keep_copy=keep_copy)
    for _ in range(2):  # the second start finds nothing to move and changes nothing
        server = _start(data_dir, allowed_endpoints=allowed)
        try:
            _check(server, moto_s3_auth)
        finally:
            server.stop()


def test_stage_and_file_format_names_are_primary_keys_of_the_security_database(
    server: RunningServer,
) -> None:
    with server.engine.db.security.cursor() as cur:
        keys = cur.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY' AND table_name IN ('stages', 'file_formats') "
            "ORDER BY table_name"
        ).fetchall()
    assert keys == [("file_formats", ["name"]), ("stages", ["name"])]
    assert not {"stages", "file_formats"} & _catalog_tables(server)
