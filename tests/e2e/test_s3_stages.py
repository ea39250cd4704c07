"""External stages and an S3 storage root, against a real S3 API server (moto) on loopback."""

from __future__ import annotations

import gzip
import io
import urllib.request
from urllib.parse import urlsplit

import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import connect
from tests.e2e.stage_helpers import execute, get, presign, put, query
from tests.s3 import MotoServer, make_bucket, s3_client

pytestmark = pytest.mark.s3


def _host_port(server: MotoServer) -> str:
    parts = urlsplit(server.endpoint)
    return f"{parts.hostname}:{parts.port}"


def _connection(server: MotoServer) -> str:
    return (
        f"CONNECTION = (ENDPOINT_URL = '{server.endpoint}', ACCESS_KEY_ID = '{server.access_key}', "
        f"SECRET_ACCESS_KEY = '{server.secret_key}', REGION = '{server.region}')"
    )


@pytest.fixture
def s3_server(start_server, moto_s3):
    return start_server(allowed_endpoints=_host_port(moto_s3))


@pytest.fixture
def ext(s3_server, moto_s3):
    bucket = make_bucket(moto_s3)
    conn = connect(s3_server)
    execute(
        conn,
        f"CREATE STAGE ext URL = 's3://{bucket}/landing/' {_connection(moto_s3)} FILE_FORMAT = (TYPE = CSV)",
    )
    conn.bucket = bucket  # type: ignore[attr-defined]
    yield conn
    conn.close()


def _parquet(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_external_stage_list_put_get_remove(ext, moto_s3):
    client = s3_client(moto_s3)
    client.put_object(Bucket=ext.bucket, Key="landing/a.csv", Body=b"1,x\n")
    client.put_object(Bucket=ext.bucket, Key="landing/sub/b.csv", Body=b"2,y\n")
    client.put_object(Bucket=ext.bucket, Key="elsewhere/c.csv", Body=b"3,z\n")
    rows = query(ext, "LIST @ext")
    assert [r["name"] for r in rows] == ["a.csv", "sub/b.csv"]
    assert rows[0]["size"] == 4 and rows[0]["md5"]  # S3's ETag
    put(ext, "@ext/up/new.csv", b"4,w\n")
    assert client.get_object(Bucket=ext.bucket, Key="landing/up/new.csv")["Body"].read() == b"4,w\n"
    assert get(ext, "@ext/a.csv") == b"1,x\n"
    assert execute(ext, "REMOVE @ext/sub/") == 1
    assert [r["name"] for r in query(ext, "LIST @ext")] == ["a.csv", "up/new.csv"]


def test_presign_is_native_s3(ext, moto_s3):
    row = presign(ext, "PRESIGN @ext/a.csv EXPIRE = 120")
    assert row["url"].startswith(moto_s3.endpoint)
    assert "X-Amz-Expires=120" in row["url"] and "X-Amz-Signature=" in row["url"]
    upload = presign(ext, "PRESIGN UPLOAD @ext/typed.json CONTENT_TYPE = 'application/json'")
    assert upload["method"] == "PUT"
    assert upload["headers"] == {"Content-Type": "application/json"}
    assert "X-Amz-SignedHeaders=content-type%3Bhost" in upload["url"]  # the type is part of the signature
    request = urllib.request.Request(
        upload["url"], data=b"{}", method="PUT", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    assert get(ext, "@ext/typed.json") == b"{}"


def test_copy_both_ways_and_select(ext, moto_s3, unique_table):
    t = unique_table("s3")
    execute(ext, f"CREATE TABLE {t} (id INTEGER, name VARCHAR)")
    client = s3_client(moto_s3)
    client.put_object(Bucket=ext.bucket, Key="landing/in/a.csv", Body=b"1,x\n2,y\n")
    assert query(ext, f"COPY INTO {t} FROM @ext/in/")[0]["Rows_loaded"] == 2
    assert query(ext, f"COPY INTO {t} FROM @ext/in/") == []  # load history works on S3 too
    unloaded = query(ext, f"COPY INTO @ext/out/ FROM {t} FILE_FORMAT = (TYPE = PARQUET)")
    assert unloaded[0]["rows_unloaded"] == 2
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=ext.bucket, Prefix="landing/out/")["Contents"]]
    assert len(keys) == 1 and keys[0].endswith(".parquet")
    assert query(ext, "SELECT count(*) AS n FROM @ext/out/ (FILE_FORMAT => 'PARQUET')") == [{"n": 2}]
    client.put_object(
        Bucket=ext.bucket, Key="landing/pq/x.parquet", Body=_parquet(pa.table({"id": [5], "name": ["p"]}))
    )
    assert query(ext, f"COPY INTO {t} FROM @ext/pq/ FILE_FORMAT = (TYPE = PARQUET)")[0]["Rows_loaded"] == 1


def test_compressed_files_on_s3(ext, moto_s3, unique_table):
    # pyarrow's S3 streams decompress by extension unless told not to: read once, not twice.
    client = s3_client(moto_s3)
    packed = gzip.compress(b"1,x\n2,NULL\n")
    client.put_object(Bucket=ext.bucket, Key="landing/gz/a.csv.gz", Body=packed)
    client.put_object(Bucket=ext.bucket, Key="landing/gz/b.ndjson.gz", Body=gzip.compress(b'{"id": 3}\n'))
    assert query(ext, "SELECT $1 AS id, $2 AS name FROM @ext/gz/a.csv.gz") == [
        {"id": "1", "name": "x"},
        {"id": "2", "name": "NULL"},
    ]
    t = unique_table("gz")
    execute(ext, f"CREATE TABLE {t} (id INTEGER, name VARCHAR DEFAULT 'd')")
    csv = query(ext, f"COPY INTO {t} FROM @ext/gz/a.csv.gz FILE_FORMAT = (TYPE = CSV NULL_IF = ('NULL'))")
    assert [r["Rows_loaded"] for r in csv] == [2]
    fmt = "FILE_FORMAT = (TYPE = NDJSON MISSING_FIELD_AS = FIELD_DEFAULT)"
    assert [r["Rows_loaded"] for r in query(ext, f"COPY INTO {t} FROM @ext/gz/b.ndjson.gz {fmt}")] == [2 - 1]
    assert query(ext, f"SELECT id, name FROM {t} ORDER BY id") == [
        {"id": 1, "name": "x"},
        {"id": 2, "name": None},
        {"id": 3, "name": "d"},
    ]
    assert get(ext, "@ext/gz/a.csv.gz") == packed  # downloads stay byte for byte


def test_credentials_are_masked(ext, moto_s3):
    [row] = query(ext, "DESC STAGE ext")
    assert row["stage_type"] == "External" and row["storage_type"] == "s3"
    assert row["url"].startswith("s3://") and row["has_credentials"] is True
    assert moto_s3.secret_key not in row["storage_params"]
    assert moto_s3.secret_key not in str(query(ext, "SHOW STAGES"))
    assert "***" in row["storage_params"]


def test_drop_external_stage_keeps_files(ext, moto_s3):
    client = s3_client(moto_s3)
    client.put_object(Bucket=ext.bucket, Key="landing/keep.csv", Body=b"1\n")
    execute(ext, "DROP STAGE ext")
    assert client.get_object(Bucket=ext.bucket, Key="landing/keep.csv")["Body"].read() == b"1\n"


def test_loopback_endpoint_refused_unless_allowed(server, moto_s3, root_conn):
    bucket = make_bucket(moto_s3)
    with pytest.raises(dbapi.Error, match="loopback or private address"):
        execute(root_conn, f"CREATE STAGE nope URL = 's3://{bucket}/x/' {_connection(moto_s3)}")
    with pytest.raises(dbapi.Error, match=r"169\.254\.169\.254:80 is a loopback or private address"):
        execute(
            root_conn,
            "CREATE STAGE meta URL = 's3://b/x/' CONNECTION = (ENDPOINT_URL = 'http://169.254.169.254')",
        )
    with pytest.raises(dbapi.Error, match="must be s3://"):
        execute(root_conn, "CREATE STAGE fs1 URL = 'file:///etc/'")


def test_wrong_credentials_fail_at_first_use(start_server, moto_s3_auth):
    running = start_server(allowed_endpoints=_host_port(moto_s3_auth))
    bucket = make_bucket(moto_s3_auth)
    bad = MotoServer(moto_s3_auth.endpoint, moto_s3_auth.access_key, "wrong-secret-value")
    with connect(running) as conn:
        # As in Databend and Snowflake, CREATE STAGE does not contact the store (issue 15).
        execute(conn, f"CREATE STAGE badcreds URL = 's3://{bucket}/p/' {_connection(bad)}")
        where = f"stage @badcreds at {moto_s3_auth.endpoint}"
        with pytest.raises(dbapi.Error, match=f"Access denied by the S3 endpoint for {where}") as err:
            query(conn, "LIST @badcreds")
        assert "wrong-secret-value" not in str(err.value)
        execute(conn, f"CREATE STAGE goodcreds URL = 's3://{bucket}/p/' {_connection(moto_s3_auth)}")
        assert query(conn, "LIST @goodcreds") == []


def test_storage_root_on_s3(start_server, moto_s3):
    bucket = make_bucket(moto_s3)
    running = start_server(
        storage_root=f"s3://{bucket}/root",
        storage_endpoint=moto_s3.endpoint,
        storage_access_key_id=moto_s3.access_key,
        storage_secret_access_key=moto_s3.secret_key,
        storage_region=moto_s3.region,
    )
    client = s3_client(moto_s3)
    with connect(running) as conn:
        put(conn, "@~/data/a.csv", b"1,a\n2,b\n")
        assert (
            client.get_object(Bucket=bucket, Key="root/stage/user/root/data/a.csv")["Body"].read()
            == b"1,a\n2,b\n"
        )
        assert [r["name"] for r in query(conn, "LIST @~")] == ["data/a.csv"]
        execute(conn, "CREATE TABLE s3root (id INTEGER, v VARCHAR)")
        assert (
            query(conn, "COPY INTO s3root FROM @~/data/ FILE_FORMAT = (TYPE = CSV) PURGE = TRUE")[0][
                "Rows_loaded"
            ]
            == 2
        )
        assert query(conn, "LIST @~") == []
        execute(conn, "CREATE STAGE onroot")
        put(conn, "@onroot/x.csv", b"x")
        assert client.get_object(Bucket=bucket, Key="root/stage/internal/onroot/x.csv")["Body"].read() == b"x"
        execute(conn, "DROP STAGE onroot")
        assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="root/stage/internal/onroot/")


def test_cli_put_get_on_s3_root(start_server, moto_s3, tmp_path, monkeypatch):
    from client import cli as client_cli
    from tests.conftest import ROOT_PASSWORD

    bucket = make_bucket(moto_s3)
    running = start_server(
        storage_root=f"s3://{bucket}/cli",
        storage_endpoint=moto_s3.endpoint,
        storage_access_key_id=moto_s3.access_key,
        storage_secret_access_key=moto_s3.secret_key,
        storage_region=moto_s3.region,
    )
    monkeypatch.setenv("STAGEFLIGHT_URI", running.uri)
    monkeypatch.setenv("STAGEFLIGHT_USER", "root")
    monkeypatch.setenv("STAGEFLIGHT_PASSWORD", ROOT_PASSWORD)
    source = tmp_path / "up.csv"
    source.write_bytes(b"1,2,3\n" * 1000)
    assert client_cli.main("put", [str(source), "@~/cli/"]) == 0
    body = s3_client(moto_s3).get_object(Bucket=bucket, Key="cli/stage/user/root/cli/up.csv")["Body"].read()
    assert body == source.read_bytes()
    target = tmp_path / "down"
    assert client_cli.main("get", ["@~/cli/", str(target)]) == 0
    assert (target / "cli" / "up.csv").read_bytes() == source.read_bytes() or (
        target / "up.csv"
    ).read_bytes() == source.read_bytes()


def test_parquet_copy_from_s3_many_files_and_a_bad_one(ext, moto_s3, unique_table):
    client = s3_client(moto_s3)
    expected = []
    for i in range(3):
        part = pa.table(
            {"id": list(range(i * 100, i * 100 + 100)), "name": [("a", "b", None)[j % 3] for j in range(100)]}
        )
        expected += part.to_pylist()
        client.put_object(Bucket=ext.bucket, Key=f"landing/pqs/p{i}.parquet", Body=_parquet(part))
    t = unique_table("s3pq")
    execute(ext, f"CREATE TABLE {t} (id INTEGER, name VARCHAR)")
    rows = query(ext, f"COPY INTO {t} FROM @ext/pqs/ FILE_FORMAT = (TYPE = PARQUET)")
    assert [(r["File"], r["Rows_loaded"]) for r in rows] == [(f"pqs/p{i}.parquet", 100) for i in range(3)]
    assert query(ext, f"SELECT id, name FROM {t} ORDER BY id") == expected
    bad = pa.table({"id": ["1", "x"], "name": ["a", "a"]})
    client.put_object(Bucket=ext.bucket, Key="landing/pqs/q.parquet", Body=_parquet(bad))
    with pytest.raises(
        dbapi.OperationalError,
        match=r"abort after 1 errors! The first error at file 'pqs/q.parquet', line 2: ",
    ):
        query(ext, f"COPY INTO {t} FROM @ext/pqs/ FILE_FORMAT = (TYPE = PARQUET)")
    assert query(ext, f"SELECT count(*) AS n FROM {t}") == [{"n": 300}]
