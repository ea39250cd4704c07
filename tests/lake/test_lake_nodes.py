"""Two real server processes on one DuckLake (issue 14, PRs 12-14): tables, stages and load history
shared through the lake, users and grants through the PostgreSQL catalog.

Lake mode needs DuckDB 1.5.5 with its extension wheels (``pip install -e '.[lake,test]'``);
./scripts/test runs this directory in a second virtualenv that has them (.venv-lake).
"""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager.dbapi as dbapi
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.stage_helpers import execute, http_status, presign, query
from tests.pg import PgCluster
from tests.serverproc import ROOT_PASSWORD, ServerProcess, server_process


def _lake_missing() -> str | None:
    if duckdb.__version__ != "1.5.5" or importlib.util.find_spec("duckdb_extension_ducklake") is None:
        return (
            f"lake mode needs DuckDB 1.5.5 and its extension wheels (this is DuckDB {duckdb.__version__}): "
            "pip install -e '.[lake,test]' (./scripts/test runs tests/lake in .venv-lake)"
        )
    return None


pytestmark = pytest.mark.skipif(_lake_missing() is not None, reason=str(_lake_missing()))


@pytest.fixture(scope="module")
def lake(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two lake nodes: the same --catalog and --storage-root, their own data dirs."""
    schema = pg_cluster.new_schema()
    base = tmp_path_factory.mktemp("lake")
    shared = base / "shared"
    with pytest.MonkeyPatch.context() as mp, ExitStack() as stack:
        mp.setenv("PGPASSWORD", pg_cluster.role_password)
        mp.delenv("PGPASSFILE", raising=False)
        args = ("--catalog", pg_cluster.url(schema), "--tables", "lake", "--storage-root", str(shared))
        a = stack.enter_context(server_process(base / "a", *args))
        b = stack.enter_context(server_process(base / "b", *args))
        yield {"a": a, "b": b, "shared": shared, "args": args, "base": base}
    pg_cluster.drop_schema(schema)


def _connect(node: ServerProcess) -> Any:
    return flightsql.connect(
        node.uri, db_kwargs={"username": "root", "password": ROOT_PASSWORD}, autocommit=True
    )


@pytest.fixture
def roots(lake: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    with _connect(lake["a"]) as ra, _connect(lake["b"]) as rb:
        yield ra, rb


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _count(conn: Any, table: str) -> int:
    return int(query(conn, f"SELECT count(*) AS n FROM {table}")[0]["n"])


def test_a_table_made_on_one_node_is_served_by_the_other(roots):
    ra, rb = roots
    t = _name("vis")
    execute(ra, f"CREATE TABLE {t} (id INTEGER, name VARCHAR)")
    assert execute(ra, f"INSERT INTO {t} VALUES (1, 'from a'), (2, 'from a')") == 2
    assert query(rb, f"SELECT id, name FROM {t} ORDER BY id") == [
        {"id": 1, "name": "from a"},
        {"id": 2, "name": "from a"},
    ]
    assert execute(rb, f"INSERT INTO {t} VALUES (3, 'from b')") == 1
    assert _count(ra, t) == 3
    names = [r["name"] for r in query(ra, "SHOW TABLES")]
    assert t in names
    # metadata RPCs (GetDbSchemas, GetTables) report lake tables
    objects = ra.adbc_get_objects(depth="tables", table_name_filter=t).read_all().to_pylist()
    tables = [
        tb["table_name"] for c in objects for s in c["catalog_db_schemas"] for tb in s["db_schema_tables"]
    ]
    assert tables == [t]


def test_concurrent_appends_from_both_nodes_all_land(lake, roots):
    ra, _ = roots
    t = _name("app")
    execute(ra, f"CREATE TABLE {t} (node VARCHAR, i INTEGER)")
    errors: list[BaseException] = []

    def append(node: ServerProcess, label: str) -> None:
        try:
            with _connect(node) as conn:
                for i in range(10):
                    execute(conn, f"INSERT INTO {t} VALUES ('{label}', {i})")
        except BaseException as exc:  # asserted below
            errors.append(exc)

    workers = [threading.Thread(target=append, args=(lake[n], f"{n}{k}")) for n in "ab" for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert errors == []
    assert _count(ra, t) == 40
    assert query(ra, f"SELECT count(DISTINCT node) AS n FROM {t}") == [{"n": 4}]


def test_conflicting_deletes_one_wins_the_other_is_told_to_retry(roots):
    ra, rb = roots
    t = _name("del")
    execute(ra, f"CREATE TABLE {t} AS SELECT range AS i FROM range(100)")
    with ra.cursor() as ca, rb.cursor() as cb:
        ca.execute("BEGIN TRANSACTION")
        cb.execute("BEGIN TRANSACTION")
        ca.execute(f"DELETE FROM {t} WHERE i < 10")
        cb.execute(f"DELETE FROM {t} WHERE i >= 90")
        ca.execute("COMMIT")
        with pytest.raises(
            dbapi.Error, match="Concurrent change: another transaction changed the same table"
        ):
            cb.execute("COMMIT")
    assert _count(rb, t) == 90  # A's delete stands, B's is gone whole
    execute(rb, f"DELETE FROM {t} WHERE i >= 90")  # run again, it succeeds
    assert _count(ra, t) == 80


def _stage_files(shared: Path, stage: str, count: int, rows: int) -> None:
    """Parquet files put straight into an internal stage's storage (stage/internal/<name>/)."""
    folder = shared / "stage" / "internal" / stage
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        table = pa.table({"f": pa.array([n] * rows, pa.int32()), "i": pa.array(range(rows), pa.int64())})
        pq.write_table(table, folder / f"part_{n:02d}.parquet")


def copy_from_both(ra: Any, rb: Any, table: str, stage: str) -> list[str]:
    """Both nodes run ``COPY INTO table FROM @stage`` at once: the files they loaded, together, sorted."""
    loaded: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def copy(label: str, conn: Any) -> None:
        try:
            loaded[label] = [r["File"] for r in query(conn, f"COPY INTO {table} FROM @{stage}")]
        except BaseException as exc:  # asserted below
            errors.append(exc)

    workers = [threading.Thread(target=copy, args=(label, conn)) for label, conn in (("a", ra), ("b", rb))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert errors == []
    return sorted(loaded["a"] + loaded["b"])


def test_both_nodes_copying_the_same_files_load_each_once(lake, roots):
    ra, rb = roots
    t, stage = _name("cp"), _name("st")
    execute(ra, f"CREATE TABLE {t} (f INTEGER, i BIGINT)")
    execute(ra, f"CREATE STAGE {stage}")
    _stage_files(lake["shared"], stage, count=8, rows=5000)
    assert copy_from_both(ra, rb, t, stage) == [f"part_{n:02d}.parquet" for n in range(8)]
    assert _count(ra, t) == 8 * 5000
    history = query(rb, f"SELECT file_name FROM COPY_HISTORY(TABLE_NAME => 'main.{t}')")
    assert len(history) == 8
    assert query(rb, f"COPY INTO {t} FROM @{stage}") == []  # loaded once, on either node
    forced = query(rb, f"COPY INTO {t} FROM @{stage} FORCE = TRUE")
    assert len(forced) == 8
    assert _count(ra, t) == 16 * 5000


def test_users_stages_and_grants_made_on_one_node_work_on_the_other(lake, roots):
    ra, rb = roots
    t, stage, user = _name("g"), _name("ust"), _name("u")
    execute(ra, f"CREATE TABLE {t} AS SELECT 7 AS v")
    execute(ra, f"CREATE USER {user} IDENTIFIED BY 'pw-{user}'")
    execute(ra, f"GRANT SELECT ON {t} TO {user}")
    execute(ra, f"CREATE STAGE {stage}")
    execute(ra, f"GRANT READ ON STAGE {stage} TO {user}")
    with flightsql.connect(
        lake["b"].uri, db_kwargs={"username": user, "password": f"pw-{user}"}, autocommit=True
    ) as conn:
        assert query(conn, f"SELECT v FROM {t}") == [{"v": 7}]
        assert query(conn, f"LIST @{stage}") == []
    assert [r["name"] for r in query(rb, "SHOW STAGES") if r["name"] == stage] == [stage]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT * FROM __ducklake_metadata_lake.public.ducklake_snapshot", "reserved"),
        ("DELETE FROM __ducklake_metadata_lake.public.ducklake_data_file", "reserved"),
        ("SELECT * FROM postgres_query('__ducklake_metadata_lake', 'SELECT 1')", "postgres_query"),
        ("CALL postgres_execute('__ducklake_metadata_lake', 'SELECT 1')", "CALL"),
        ("SELECT * FROM ducklake_snapshots('lake')", "ducklake_snapshots"),
        ("CALL ducklake_expire_snapshots('lake', older_than => now())", "CALL"),
        ("CHECKPOINT lake", "CHECKPOINT"),
        ("DETACH lake", "DETACH"),
        ("ATTACH ':memory:' AS other", "ATTACH"),
        ("CREATE SECRET evil (TYPE s3, KEY_ID 'k', SECRET 's')", "SECRET"),
        ("SELECT * FROM memory.main.anything", "Catalog not allowed: memory"),
        ("SELECT 1 FROM lake.main.t AT (VERSION => 1)", "Time travel is not allowed"),
        ("SELECT * FROM lake.snapshots()", "snapshots"),
    ],
)
def test_lake_internals_are_out_of_reach(roots, sql, message):
    ra, _ = roots
    with pytest.raises(dbapi.Error, match=message):
        execute(ra, sql)
    assert query(ra, "SELECT 1 AS still") == [{"still": 1}]


def test_health_reports_the_catalog_and_the_lake(lake):
    for node in (lake["a"], lake["b"]):
        with urllib.request.urlopen(node.http_url + "/health", timeout=30) as response:
            assert response.status == 200
            assert json.loads(response.read()) == {"status": "ok", "catalog": "ok", "lake": "ok"}


def test_root_vacuums_the_lake_and_others_may_not(lake, roots):
    ra, rb = roots
    t = _name("vac")
    execute(ra, f"CREATE TABLE {t} AS SELECT range AS i FROM range(1000)")
    execute(ra, f"DROP TABLE {t}")
    [row] = query(rb, "VACUUM LAKE RETAIN 0 HOURS")
    assert row["expired_snapshots"] >= 2 and row["removed_files"] >= 1
    assert query(rb, "VACUUM LAKE") == [{"expired_snapshots": 0, "removed_files": 0}]  # kept: 7 days
    user = _name("v")
    execute(ra, f"CREATE USER {user} IDENTIFIED BY 'pw-{user}'")
    with flightsql.connect(
        lake["a"].uri, db_kwargs={"username": user, "password": f"pw-{user}"}, autocommit=True
    ) as conn:
        with pytest.raises(dbapi.Error, match="VACUUM LAKE requires the root user"):
            query(conn, "VACUUM LAKE")


def test_two_nodes_creating_one_stage_name_at_once_make_one_stage(roots):
    ra, rb = roots
    for _ in range(3):
        stage = _name("race")
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def create(conn: Any, stage: str = stage, barrier: Any = barrier, outcomes: Any = outcomes) -> None:
            barrier.wait()
            try:
                execute(conn, f"CREATE STAGE {stage}")
                outcomes.append("created")
            except dbapi.Error as exc:
                outcomes.append(str(exc))

        workers = [threading.Thread(target=create, args=(c,)) for c in (ra, rb)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert outcomes.count("created") == 1
        [refused] = [o for o in outcomes if o != "created"]
        assert f"Stage already exists: @{stage}" in refused
        assert [r["name"] for r in query(ra, "SHOW STAGES") if r["name"] == stage] == [stage]


def test_two_nodes_starting_together_on_a_new_lake_both_come_up(pg_cluster, tmp_path):
    """The first ATTACH creates the lake's metadata tables: a second node must wait, not collide."""
    schema = pg_cluster.new_schema()
    results: dict[str, Any] = {}
    try:
        with pytest.MonkeyPatch.context() as mp, ExitStack() as stack:
            mp.setenv("PGPASSWORD", pg_cluster.role_password)
            url = pg_cluster.url(schema)
            args = ("--catalog", url, "--tables", "lake", "--storage-root", str(tmp_path / "s"))
            barrier = threading.Barrier(2)

            def start(label: str) -> None:
                barrier.wait()
                try:
                    results[label] = stack.enter_context(server_process(tmp_path / label, *args))
                except BaseException as exc:  # asserted below
                    results[label] = exc

            workers = [threading.Thread(target=start, args=(n,)) for n in "ab"]
            for w in workers:
                w.start()
            for w in workers:
                w.join(120)
            assert all(isinstance(results[n], ServerProcess) for n in "ab"), results
            with _connect(results["a"]) as ra, _connect(results["b"]) as rb:
                execute(ra, "CREATE TABLE together AS SELECT 1 AS x")
                assert query(rb, "SELECT x FROM together") == [{"x": 1}]
    finally:
        pg_cluster.drop_schema(schema)


def test_a_copy_in_an_open_transaction_keeps_the_table_locked_until_commit(lake, roots):
    """Node b's COPY waits for a's transaction: it then sees a's history and loads nothing twice."""
    ra, rb = roots
    t, stage = _name("tx"), _name("txs")
    execute(ra, f"CREATE TABLE {t} (f INTEGER, i BIGINT)")
    execute(ra, f"CREATE STAGE {stage}")
    _stage_files(lake["shared"], stage, count=4, rows=1000)
    other: list[Any] = []
    with ra.cursor() as ca:
        ca.execute("BEGIN TRANSACTION")
        ca.execute(f"COPY INTO {t} FROM @{stage}")
        assert len(ca.fetchall()) == 4
        ca.execute(f"COPY INTO {t} FROM @{stage}")  # the same session takes its own lock again
        assert ca.fetchall() == []
        waiting = threading.Thread(target=lambda: other.append(query(rb, f"COPY INTO {t} FROM @{stage}")))
        waiting.start()
        waiting.join(3)
        assert waiting.is_alive()  # b waits for a's lock
        ca.execute("COMMIT")
    waiting.join(60)
    assert other == [[]]
    assert _count(rb, t) == 4 * 1000


def test_a_url_presigned_on_one_node_opens_on_the_other(lake, roots):
    """The nodes sign local presigned URLs with one key kept in the catalog: behind a load balancer
    the HTTP request may reach any node, and the URL outlives the node that signed it."""
    ra, rb = roots
    name = _name("pre") + ".csv"
    signed_upload = presign(ra, f"PRESIGN UPLOAD @~/{name}")["url"]
    on_b = signed_upload.replace(lake["a"].http_url, lake["b"].http_url)
    assert on_b != signed_upload
    headers = {"Content-Type": "application/octet-stream"}
    assert http_status(on_b, method="PUT", data=b"1,signed on a", headers=headers) == 200
    assert [r["name"] for r in query(ra, f"LIST @~ PATTERN = '{name}'")] == [name]
    signed_download = presign(rb, f"PRESIGN @~/{name}")["url"]
    on_a = signed_download.replace(lake["b"].http_url, lake["a"].http_url)
    with urllib.request.urlopen(on_a, timeout=30) as response:
        assert response.read() == b"1,signed on a"
    tampered = on_a.replace(name, "x" + name)
    assert http_status(tampered) == 403
