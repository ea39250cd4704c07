"""Stage statements end to end: two real users over ADBC, real HTTP for presigned URLs."""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.parse
from pathlib import Path

import adbc_driver_manager.dbapi as dbapi
import pytest

from tests.conftest import connect
from tests.e2e.stage_helpers import execute, get, http_status, presign, put, query


def test_user_stage_upload_list_download(alice):
    assert put(alice, "@~/data/one.csv", b"a,b\n1,2\n") == 200
    assert put(alice, "@~/data/two.csv", b"a,b\n3,4\n5,6\n") == 200
    rows = query(alice, "LIST @~")
    assert [r["name"] for r in rows] == ["data/one.csv", "data/two.csv"]
    assert [r["size"] for r in rows] == [8, 12]
    assert rows[0]["md5"] is None and rows[0]["creator"] is None
    assert rows[0]["last_modified"].endswith(" +0000")
    assert get(alice, "@~/data/two.csv") == b"a,b\n3,4\n5,6\n"


def test_list_columns_and_types(alice):
    with alice.cursor() as cur:
        cur.execute("LIST @~")
        assert [d[0] for d in cur.description] == ["name", "size", "md5", "last_modified", "creator"]


def test_list_path_is_a_prefix_and_pattern_is_anchored(alice):
    for name in ["a.csv", "a/x.csv", "ab.csv", "b.csv", "dir/ontime_200.csv", "ontime_1.csv"]:
        put(alice, f"@~/{name}", b"x")
    assert [r["name"] for r in query(alice, "LIST @~/a")] == ["a.csv", "a/x.csv", "ab.csv"]
    assert [r["name"] for r in query(alice, "LIST @~/a/")] == ["a/x.csv"]
    assert [r["name"] for r in query(alice, "LIST @~ PATTERN = 'ontime.*'")] == ["ontime_1.csv"]
    assert [r["name"] for r in query(alice, "LIST @~ PATTERN = '.*ontime.*'")] == [
        "dir/ontime_200.csv",
        "ontime_1.csv",
    ]
    with pytest.raises(dbapi.Error, match=re.escape("Invalid PATTERN '(unclosed': ")):
        query(alice, "LIST @~ PATTERN = '(unclosed'")


def test_remove_with_pattern_and_missing_path(alice):
    for name in ["ontime_1.csv", "ontime_2.csv", "dir/ontime_200.csv", "keep.csv"]:
        put(alice, f"@~/{name}", b"x")
    assert execute(alice, "REMOVE @~ PATTERN = 'ontime.*'") == 2
    assert [r["name"] for r in query(alice, "LIST @~")] == ["dir/ontime_200.csv", "keep.csv"]
    assert execute(alice, "REMOVE @~/no/such/path") == 0
    assert execute(alice, "RM @~/dir/") == 1
    assert [r["name"] for r in query(alice, "LIST @~")] == ["keep.csv"]


def test_user_stages_are_isolated(alice, bob):
    put(alice, "@~/secret.csv", b"alice-only")
    put(bob, "@~/mine.csv", b"bob")
    assert [r["name"] for r in query(bob, "LIST @~")] == ["mine.csv"]
    assert execute(bob, "REMOVE @~/secret.csv") == 0
    assert get(alice, "@~/secret.csv") == b"alice-only"
    with pytest.raises(urllib.error.HTTPError, match="HTTP Error 404") as err:
        get(bob, "@~/secret.csv")  # bob's own @~ has no such file: the download 404s
    with err.value:  # the error is the response: close its socket
        assert err.value.code == 404


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (
            "@~/../{other}/secret.csv",
            "Invalid stage path '../{other}/secret.csv': '..' segments are not allowed",
        ),
        (
            "@~/a/../../{other}/secret.csv",
            "Invalid stage path 'a/../../{other}/secret.csv': '..' segments are not allowed",
        ),
        ("@~/./secret.csv", "Invalid stage path './secret.csv': '.' segments are not allowed"),
        ("@~/a//b.csv", "Invalid stage path 'a//b.csv': empty segments ('//') are not allowed"),
        (
            "@~/..%2f{other}/secret.csv",
            "Invalid stage path '..%2f{other}/secret.csv': character '%' is not allowed",
        ),
        (
            "@~/%2e%2e/{other}/secret.csv",
            "Invalid stage path '%2e%2e/{other}/secret.csv': character '%' is not allowed",
        ),
        (
            "@~/..\\{other}\\secret.csv",
            "Invalid stage path '..\\{other}\\secret.csv': character '\\\\' is not allowed",
        ),
        ("@~/~/secret.csv", "Invalid stage path '~/secret.csv': character '~' is not allowed"),
        ("@~/*.csv", "Unterminated block comment: a '/*' has no closing '*/'"),  # '/*' opens a comment
    ],
)
def test_traversal_is_refused_everywhere(alice, bob, ref, expected):
    put(alice, "@~/secret.csv", b"alice-only")
    target = ref.format(other=alice.user_name)
    message = expected.format(other=alice.user_name)
    for sql in [f"LIST {target}", f"REMOVE {target}", f"PRESIGN {target}", f"PRESIGN UPLOAD {target}"]:
        with pytest.raises(dbapi.Error, match=re.escape(message)):
            query(bob, sql)
    assert get(alice, "@~/secret.csv") == b"alice-only"


def test_no_syntax_reaches_another_users_stage(alice, bob):
    put(alice, "@~/secret.csv", b"alice-only")
    other = alice.user_name
    # Each is read as something that is not alice's stage, and refused for what it is.
    for sql, message in [
        (f"LIST @{other}", f"Stage does not exist: @{other}"),
        (f"LIST @user/{other}", "Stage does not exist: @user"),
        (f"LIST @stage/user/{other}", "Stage does not exist: @stage"),
        (f"LIST @~{other}", f"Invalid stage reference '@~{other}': bad stage name '~{other}'"),
        (f"LIST '@~/../{other}/'", f"Invalid stage path '../{other}/': '..' segments are not allowed"),
    ]:
        with pytest.raises(dbapi.Error, match=re.escape(message)):
            query(bob, sql)


def test_presign_urls_are_tamper_proof(alice, bob):
    put(alice, "@~/f.csv", b"content")
    good = presign(alice, "PRESIGN @~/f.csv")["url"]
    assert http_status(good) == 200
    parsed = urllib.parse.urlsplit(good)
    params = dict(urllib.parse.parse_qsl(parsed.query))
    tampered_sig = good.replace(
        params["sig"], params["sig"][:-2] + ("00" if params["sig"][-2:] != "00" else "11")
    )
    assert http_status(tampered_sig) == 403
    other_path = good.replace(f"stage/user/{alice.user_name}/f.csv", f"stage/user/{bob.user_name}/f.csv")
    assert http_status(other_path) == 403
    later = good.replace(f"expires={params['expires']}", f"expires={int(params['expires']) + 1000}")
    assert http_status(later) == 403
    # A download URL cannot be used to upload.
    assert http_status(good, method="PUT", data=b"overwrite", headers={"Content-Type": "text/plain"}) == 403
    assert get(alice, "@~/f.csv") == b"content"


def test_presign_expiry_and_defaults(alice):
    put(alice, "@~/f.csv", b"content")
    row = presign(alice, "PRESIGN @~/f.csv")
    assert row["method"] == "GET" and row["headers"] == {}
    expires = int(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(row["url"]).query))["expires"])
    assert 3590 <= expires - time.time() <= 3610
    short = presign(alice, "PRESIGN DOWNLOAD @~/f.csv EXPIRE = 1")["url"]
    time.sleep(2.1)
    assert http_status(short) == 403
    with pytest.raises(dbapi.Error, match="EXPIRE must be between"):
        presign(alice, "PRESIGN @~/f.csv EXPIRE = 0")


def test_presign_upload_with_content_type(alice):
    row = presign(alice, "PRESIGN UPLOAD @~/up.json CONTENT_TYPE = 'application/json'")
    assert row["method"] == "PUT" and row["headers"] == {"Content-Type": "application/json"}
    assert http_status(row["url"], "PUT", b"{}", {"Content-Type": "text/plain"}) == 400
    assert http_status(row["url"], "PUT", b"{}", {"Content-Type": "application/json"}) == 200
    assert get(alice, "@~/up.json") == b"{}"


def test_range_download(alice):
    put(alice, "@~/r.bin", bytes(range(100)))
    import urllib.request

    url = presign(alice, "PRESIGN @~/r.bin")["url"]
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=10-19"})) as resp:
        assert resp.status == 206
        assert resp.read() == bytes(range(10, 20))


def test_presign_needs_a_file_path(alice):
    with pytest.raises(dbapi.Error, match="needs a file path"):
        presign(alice, "PRESIGN @~/dir/")


def test_named_stage_lifecycle_and_columns(server, root_conn):
    execute(root_conn, "CREATE STAGE raw_life FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1) COMMENT = 'landing'")
    with pytest.raises(dbapi.Error, match="Stage already exists: @raw_life"):
        execute(root_conn, "CREATE STAGE raw_life")
    execute(root_conn, "CREATE STAGE IF NOT EXISTS raw_life")
    [row] = query(root_conn, "DESC STAGE raw_life")
    assert row["name"] == "raw_life" and row["stage_type"] == "Internal"
    assert row["comment"] == "landing" and row["creator"] == "root"
    assert '"SKIP_HEADER": "1"' in row["file_format_options"]
    with root_conn.cursor() as cur:
        cur.execute("SHOW STAGES LIKE 'raw_life'")
        assert [d[0] for d in cur.description] == [
            "name",
            "stage_type",
            "storage_type",
            "url",
            "endpoint",
            "has_credentials",
            "has_encryption_key",
            "storage_params",
            "file_format_options",
            "creator",
            "created_on",
            "comment",
            "owner",
        ]
    put(root_conn, "@raw_life/x.csv", b"h\n1\n")
    assert [r["name"] for r in query(root_conn, "LIST @raw_life")] == ["x.csv"]
    files = server.config.data_dir / "storage" / "stage" / "internal" / "raw_life" / "x.csv"
    assert files.exists()
    execute(root_conn, "ALTER STAGE raw_life SET COMMENT = 'changed'")
    assert query(root_conn, "DESC STAGE raw_life")[0]["comment"] == "changed"
    execute(root_conn, "ALTER STAGE raw_life UNSET COMMENT")
    assert query(root_conn, "DESC STAGE raw_life")[0]["comment"] is None
    execute(root_conn, "DROP STAGE raw_life")
    assert not files.exists()
    with pytest.raises(dbapi.Error, match="Stage does not exist: @raw_life"):
        query(root_conn, "LIST @raw_life")
    execute(root_conn, "DROP STAGE IF EXISTS raw_life")


def test_create_or_replace_empties_the_stage(root_conn):
    execute(root_conn, "CREATE STAGE repl")
    put(root_conn, "@repl/old.csv", b"x")
    execute(root_conn, "CREATE OR REPLACE STAGE repl")
    assert query(root_conn, "LIST @repl") == []
    with pytest.raises(dbapi.Error, match="cannot be combined"):
        execute(root_conn, "CREATE OR REPLACE STAGE IF NOT EXISTS repl")
    execute(root_conn, "DROP STAGE repl")


@pytest.mark.parametrize(
    "sql, message",
    [
        ("CREATE STAGE ~", "User stage (~) is not allowed to be created"),
        ("DROP STAGE ~", "User stage (~) is not allowed to be dropped"),
        ("DROP STAGE IF EXISTS ~", "User stage (~) is not allowed to be dropped"),
        ("ALTER STAGE ~ SET COMMENT = 'x'", "User stage (~) is not allowed to be altered"),
        ("ALTER STAGE ~ SET FILE_FORMAT = (TYPE = CSV)", "User stage (~) is not allowed to be altered"),
        ("CREATE STAGE bad FILE_FORMAT = (TYPE = CSV NOPE = 1)", "Unknown file format option: NOPE"),
        ("CREATE STAGE bad FILE_FORMAT = (TYPE = XML)", "Unknown file format TYPE: XML"),
        ("CREATE STAGE bad FILE_FORMAT = (TYPE = PARQUET SKIP_HEADER = 1)", "Unsupported option SKIP_HEADER"),
        ("ALTER STAGE nothere SET COMMENT = 'x'", "Stage does not exist: @nothere"),
        ("DROP STAGE nothere", "Stage does not exist: @nothere"),
        ("LIST @nothere", "Stage does not exist: @nothere"),
    ],
)
def test_stage_statement_errors(root_conn, sql, message):
    with pytest.raises(dbapi.Error, match=re.escape(message)) as err:
        query(root_conn, sql)
    assert "Traceback" not in str(err.value)


def test_user_stage_never_in_show_stages(alice):
    put(alice, "@~/x.csv", b"x")
    assert all(r["name"] != "~" for r in query(alice, "SHOW STAGES"))


def test_stage_privileges(server, root_conn, alice, bob):
    execute(root_conn, "CREATE STAGE shared_priv")
    put(root_conn, "@shared_priv/f.csv", b"data")
    for sql in ["LIST @shared_priv", "PRESIGN @shared_priv/f.csv"]:
        with pytest.raises(dbapi.ProgrammingError, match="privilege READ is required on stage @shared_priv"):
            query(alice, sql)
    execute(root_conn, f"GRANT READ ON STAGE shared_priv TO {alice.user_name}")
    assert [r["name"] for r in query(alice, "LIST @shared_priv")] == ["f.csv"]
    assert get(alice, "@shared_priv/f.csv") == b"data"
    for sql in ["REMOVE @shared_priv/f.csv", "PRESIGN UPLOAD @shared_priv/g.csv"]:
        with pytest.raises(dbapi.ProgrammingError, match="privilege WRITE is required"):
            query(alice, sql)
    execute(root_conn, f"GRANT WRITE ON STAGE shared_priv TO {alice.user_name}")
    put(alice, "@shared_priv/g.csv", b"from alice")
    assert execute(alice, "REMOVE @shared_priv/f.csv") == 1
    execute(root_conn, f"REVOKE ALL ON STAGE shared_priv FROM {alice.user_name}")
    with pytest.raises(
        dbapi.ProgrammingError,
        match=f"privilege READ is required on stage @shared_priv for user {alice.user_name}",
    ):
        query(alice, "LIST @shared_priv")
    with pytest.raises(
        dbapi.ProgrammingError,
        match=f"privilege READ is required on stage @shared_priv for user {bob.user_name}",
    ):
        query(bob, "LIST @shared_priv")
    execute(root_conn, "DROP STAGE shared_priv")


def test_create_stage_needs_privilege_and_creator_owns(root_conn, alice, bob):
    with pytest.raises(dbapi.ProgrammingError, match="CREATE STAGE privilege"):
        execute(alice, "CREATE STAGE alice_owned")
    execute(root_conn, f"GRANT CREATE STAGE ON *.* TO {alice.user_name}")
    execute(alice, "CREATE STAGE alice_owned")
    put(alice, "@alice_owned/x.csv", b"x")
    with pytest.raises(
        dbapi.ProgrammingError,
        match=f"privilege READ is required on stage @alice_owned for user {bob.user_name}",
    ):
        query(bob, "LIST @alice_owned")
    with pytest.raises(dbapi.ProgrammingError, match="only the owner"):
        execute(bob, "DROP STAGE alice_owned")
    execute(alice, f"GRANT READ ON STAGE alice_owned TO {bob.user_name}")
    assert [r["name"] for r in query(bob, "LIST @alice_owned")] == ["x.csv"]
    execute(alice, "DROP STAGE alice_owned")


def test_drop_user_removes_user_stage(server, root_conn):
    execute(root_conn, "CREATE USER dropme IDENTIFIED BY 'pw-dropme'")
    conn = connect(server, user="dropme", password="pw-dropme")
    put(conn, "@~/keep.csv", b"x")
    conn.close()
    stage_dir = server.config.data_dir / "storage" / "stage" / "user" / "dropme"
    assert (stage_dir / "keep.csv").exists()
    execute(root_conn, "DROP USER dropme")
    assert not stage_dir.exists()
    execute(root_conn, "CREATE USER dropme IDENTIFIED BY 'pw-dropme'")
    with connect(server, user="dropme", password="pw-dropme") as again:
        assert query(again, "LIST @~") == []
    execute(root_conn, "DROP USER dropme")


def test_legacy_internal_stage_keeps_old_prefix(server, root_conn):
    with server.engine.db.security.transaction() as cur:
        cur.execute("INSERT INTO stages (name, kind, creator) VALUES ('oldstage', 'LegacyInternal', 'root')")
    legacy_dir = server.config.data_dir / "storage" / "stage" / "oldstage"
    legacy_dir.mkdir(parents=True)
    (legacy_dir / "history.csv").write_bytes(b"1\n2\n")
    assert [r["name"] for r in query(root_conn, "LIST @oldstage")] == ["history.csv"]
    assert get(root_conn, "@oldstage/history.csv") == b"1\n2\n"
    put(root_conn, "@oldstage/new.csv", b"n")
    assert (legacy_dir / "new.csv").exists()
    assert execute(root_conn, "REMOVE @oldstage/history.csv") == 1
    assert not (legacy_dir / "history.csv").exists()
    execute(root_conn, "DROP STAGE oldstage")
    assert not legacy_dir.exists() or not any(legacy_dir.iterdir())


def test_new_stages_are_never_legacy(server, root_conn):
    execute(root_conn, "CREATE STAGE modern")
    put(root_conn, "@modern/a.csv", b"a")
    assert (server.config.data_dir / "storage" / "stage" / "internal" / "modern" / "a.csv").exists()
    assert not (server.config.data_dir / "storage" / "stage" / "modern").exists()
    execute(root_conn, "DROP STAGE modern")


def test_table_stage_follows_its_table(server, root_conn, unique_table):
    t = unique_table("tst")
    execute(root_conn, f"CREATE TABLE {t} (a INT)")
    put(root_conn, f"@%{t}/load.csv", b"1\n")
    assert [r["name"] for r in query(root_conn, f"LIST @%{t}")] == ["load.csv"]
    assert [r["name"] for r in query(root_conn, f"LIST @#{t}")] == ["load.csv"]
    stage_dir = server.config.data_dir / "storage" / "stage" / "table" / "main" / t
    assert (stage_dir / "load.csv").exists()
    execute(root_conn, f"DROP TABLE {t}")
    assert not stage_dir.exists()
    with pytest.raises(dbapi.Error, match=f"Table stage @%{t}: table {t} does not exist"):
        query(root_conn, f"LIST @%{t}")


def test_user_stage_gc(start_server):
    running = start_server(user_stage_retention_days=30)
    with connect(running) as conn:
        put(conn, "@~/old.csv", b"old")
        put(conn, "@~/new.csv", b"new")
        old_file = running.config.data_dir / "storage" / "stage" / "user" / "root" / "old.csv"
        past = time.time() - 40 * 86400
        os.utime(old_file, (past, past))
        rows = query(conn, "VACUUM USER STAGES")
        assert rows == [{"removed_files": 1, "removed_bytes": 3}]
        assert [r["name"] for r in query(conn, "LIST @~")] == ["new.csv"]
        assert query(conn, "VACUUM USER STAGES RETAIN 0 DAYS")[0]["removed_files"] == 1


def test_gc_needs_root_and_a_retention(alice, root_conn):
    with pytest.raises(dbapi.ProgrammingError, match="requires the root user"):
        query(alice, "VACUUM USER STAGES RETAIN 1 DAYS")
    with pytest.raises(dbapi.Error, match="No retention set"):
        query(root_conn, "VACUUM USER STAGES")


def test_symlink_in_stage_is_refused(server, alice, tmp_path: Path):
    outside = tmp_path / "outside.csv"
    outside.write_bytes(b"host secret")
    stage_dir = server.config.data_dir / "storage" / "stage" / "user" / alice.user_name
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "link.csv").symlink_to(outside)
    assert all(r["name"] != "link.csv" for r in query(alice, "LIST @~"))
    url = presign(alice, "PRESIGN @~/link.csv")["url"]
    assert http_status(url) in (400, 403, 404)


def test_same_text_reads_each_callers_own_user_stage(alice, bob):
    # One SQL text, two users: each run resolves @~ for its own caller.
    put(alice, "@~/who.csv", b"alice\n")
    put(bob, "@~/who.csv", b"bob\n")
    sql = "SELECT $1 AS who FROM @~/who.csv (FILE_FORMAT => 'CSV')"
    assert query(alice, sql) == [{"who": "alice"}]
    assert query(bob, sql) == [{"who": "bob"}]
    assert query(alice, sql) == [{"who": "alice"}]


def test_vacuum_lake_needs_lake_mode(root_conn):
    with pytest.raises(dbapi.Error, match=r"VACUUM LAKE needs lake mode \(serve --tables lake\)"):
        with root_conn.cursor() as cur:
            cur.execute("VACUUM LAKE RETAIN 2 DAYS")
