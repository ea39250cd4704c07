"""Named stages and file formats in lake mode: rows of the PostgreSQL catalog (real PRIMARY KEYs),
shared by every node, and moved there from the lake's own tables by a node of this release
starting on a lake made by an older one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager.dbapi as dbapi
import duckdb
import pytest

from tests.e2e.stage_helpers import execute, query
from tests.lake.conftest import attach_bare_lake
from tests.lake.test_lake_nodes import _connect, _lake_missing, _name
from tests.pg import PgCluster
from tests.serverproc import ServerProcess, server_process

pytestmark = pytest.mark.skipif(_lake_missing() is not None, reason=str(_lake_missing()))

SECRET = "LakeStageSecret-77aa"


@contextmanager
def _lake_nodes(
    pg_cluster: PgCluster, base: Path, schema: str, *, together: bool
) -> Iterator[dict[str, Any]]:
    """Nodes a and b on the lake of ``schema`` (storage root ``base/shared``), started one after
    the other or at the same moment."""
    args = ("--catalog", pg_cluster.url(schema), "--tables", "lake", "--storage-root", str(base / "shared"))
    with pytest.MonkeyPatch.context() as mp, ExitStack() as stack:
        mp.setenv("PGPASSWORD", pg_cluster.role_password)
        mp.delenv("PGPASSFILE", raising=False)
        managers = {n: server_process(base / n, *args) for n in "ab"}
        started: dict[str, Any] = {}
        if together:
            barrier = threading.Barrier(2)

            def start(label: str) -> None:
                barrier.wait()
                try:
                    started[label] = managers[label].__enter__()
                except BaseException as exc:  # asserted below
                    started[label] = exc

            workers = [threading.Thread(target=start, args=(n,)) for n in "ab"]
            for w in workers:
                w.start()
            for w in workers:
                w.join(120)
        else:
            for n in "ab":
                started[n] = managers[n].__enter__()
        for n in "ab":
            if isinstance(started.get(n), ServerProcess):
                stack.push(managers[n].__exit__)
        assert all(isinstance(started.get(n), ServerProcess) for n in "ab"), started
        yield started


@pytest.fixture(scope="module")
def lake(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    schema = pg_cluster.new_schema()
    base = tmp_path_factory.mktemp("lakestages")
    try:
        with _lake_nodes(pg_cluster, base, schema, together=False) as nodes:
            yield {**nodes, "schema": schema, "shared": base / "shared"}
    finally:
        pg_cluster.drop_schema(schema)


@pytest.fixture
def roots(lake: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    with _connect(lake["a"]) as ra, _connect(lake["b"]) as rb:
        yield ra, rb


def _primary_keys(pg_cluster: PgCluster, schema: str) -> dict[str, list[str]]:
    """Each table's primary-key columns, from PostgreSQL's own catalogs."""
    with pg_cluster.admin() as con:
        rows = con.execute(
            "SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum) FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY (k.conkey) "
            "WHERE k.contype = 'p' AND n.nspname = %s GROUP BY c.relname",
            [schema],
        ).fetchall()
    return {str(r[0]): list(r[1]) for r in rows}


def _lake_tables(pg_cluster: PgCluster, schema: str) -> set[str]:
    """The live tables of the lake's reserved schema, from DuckLake's metadata in PostgreSQL."""
    with pg_cluster.admin() as con:
        rows = con.execute(
            f"SELECT t.table_name FROM {schema}_lake.ducklake_table t "
            f"JOIN {schema}_lake.ducklake_schema s ON s.schema_id = t.schema_id "
            "WHERE t.end_snapshot IS NULL AND s.end_snapshot IS NULL AND s.schema_name = '__stageflight'"
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_stages_and_file_formats_are_postgresql_tables_keyed_by_name(pg_cluster, lake, roots):
    keys = _primary_keys(pg_cluster, lake["schema"])
    assert keys["stages"] == ["name"] and keys["file_formats"] == ["name"]
    assert not {"stages", "file_formats"} & _lake_tables(pg_cluster, lake["schema"])
    ra, _ = roots
    stage = _name("pgrow")
    execute(ra, f"CREATE STAGE {stage} COMMENT = 'in postgres'")
    with pg_cluster.admin() as con:
        rows = con.execute(
            f"SELECT kind, comment, creator FROM {lake['schema']}.stages WHERE name = %s", [stage]
        ).fetchall()
    assert rows == [("Internal", "in postgres", "root")]
    execute(ra, f"DROP STAGE {stage}")


def test_a_stage_and_a_file_format_made_on_a_are_used_on_b(lake, roots):
    ra, rb = roots
    stage, fmt, t = _name("shst"), _name("shfmt"), _name("sht")
    execute(ra, f"CREATE STAGE {stage}")
    execute(ra, f"CREATE FILE FORMAT {fmt} TYPE = CSV FIELD_DELIMITER = '|' SKIP_HEADER = 1")
    folder = lake["shared"] / "stage" / "internal" / stage
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "d.csv").write_bytes(b"i|s\n1|one\n2|two\n")
    [shown] = [r for r in query(rb, "SHOW FILE FORMATS") if r["name"] == fmt]
    assert "field_delimiter = '|'" in shown["format_options"]
    execute(rb, f"CREATE TABLE {t} (i INTEGER, s VARCHAR)")
    loaded = query(rb, f"COPY INTO {t} FROM @{stage} FILE_FORMAT = (FORMAT_NAME = '{fmt}')")
    assert [(r["File"], r["Rows_loaded"]) for r in loaded] == [("d.csv", 2)]
    assert query(ra, f"SELECT i, s FROM {t} ORDER BY i") == [{"i": 1, "s": "one"}, {"i": 2, "s": "two"}]
    # Dropped on b, gone on a.
    execute(rb, f"DROP FILE FORMAT {fmt}")
    execute(rb, f"DROP STAGE {stage}")
    assert fmt not in [r["name"] for r in query(ra, "SHOW FILE FORMATS")]
    with pytest.raises(dbapi.Error, match=f"Stage does not exist: @{stage}"):
        query(ra, f"LIST @{stage}")
    with pytest.raises(dbapi.Error, match=f"File format does not exist: {fmt}"):
        query(ra, f"COPY INTO {t} FROM @~ FILE_FORMAT = (FORMAT_NAME = '{fmt}')")


def test_drop_user_on_b_hands_what_it_made_on_a_to_root(lake, roots):
    ra, rb = roots
    user, stage, fmt = _name("heir"), _name("heirst"), _name("heirfmt")
    execute(ra, f"CREATE USER {user} IDENTIFIED BY 'pw-old'")
    execute(ra, f"GRANT CREATE STAGE ON *.* TO {user}")
    with _connect_as(lake["a"], user, "pw-old") as old:
        execute(old, f"CREATE STAGE {stage}")
        execute(old, f"CREATE FILE FORMAT {fmt} TYPE = CSV")
    execute(rb, f"DROP USER {user}")
    execute(rb, f"CREATE USER {user} IDENTIFIED BY 'pw-new'")
    with _connect_as(lake["a"], user, "pw-new") as new:
        with pytest.raises(dbapi.Error, match=f"Permission denied: only the owner of @{stage} or root"):
            execute(new, f"DROP STAGE {stage}")
        with pytest.raises(dbapi.Error, match=f"Permission denied: only the owner of file format {fmt}"):
            execute(new, f"DROP FILE FORMAT {fmt}")
    [row] = query(ra, f"SHOW STAGES LIKE '{stage}'")
    assert row["creator"] == "root"
    execute(ra, f"DROP STAGE {stage}")
    execute(ra, f"DROP FILE FORMAT {fmt}")
    execute(ra, f"DROP USER {user}")


def _connect_as(node: ServerProcess, user: str, password: str) -> Any:
    return flightsql.connect(node.uri, db_kwargs={"username": user, "password": password}, autocommit=True)


def _race(lake: dict[str, Any], sql: str, sessions: int = 8) -> list[str]:
    """``sql`` run at one moment by ``sessions`` sessions, half on each node: each one's outcome."""
    conns = [_connect(lake["ab"[n % 2]]) for n in range(sessions)]
    barrier = threading.Barrier(sessions)
    outcomes: list[str] = []

    def run(conn: Any) -> None:
        barrier.wait()
        try:
            execute(conn, sql)
            outcomes.append("created")
        except dbapi.Error as exc:
            outcomes.append(str(exc))

    try:
        workers = [threading.Thread(target=run, args=(c,)) for c in conns]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
    finally:
        for conn in conns:
            conn.close()
    assert len(outcomes) == sessions
    return outcomes


@pytest.mark.parametrize(
    ("create", "refused", "show", "drop"),
    [
        ("CREATE STAGE {}", "Stage already exists: @{}", "SHOW STAGES", "DROP STAGE {}"),
        (
            "CREATE FILE FORMAT {} TYPE = CSV",
            "File format already exists: {}",
            "SHOW FILE FORMATS",
            "DROP FILE FORMAT {}",
        ),
    ],
    ids=["stage", "file_format"],
)
def test_eight_sessions_on_two_nodes_creating_one_name_make_one(lake, roots, create, refused, show, drop):
    ra, rb = roots
    name = _name("race8")
    outcomes = _race(lake, create.format(name))
    assert outcomes.count("created") == 1, outcomes
    others = [o for o in outcomes if o != "created"]
    assert all(refused.format(name) in o for o in others), others
    assert not any("Traceback" in o or "duplicate key" in o for o in others)
    for conn in roots:
        assert [r["name"] for r in query(conn, show) if r["name"] == name] == [name]
    # IF NOT EXISTS: every session succeeds, and the one object stays.
    assert _race(lake, create.format(f"IF NOT EXISTS {name}")) == ["created"] * 8
    execute(rb, drop.format(name))
    assert [r["name"] for r in query(ra, show) if r["name"] == name] == []


# -- a lake made by an older release ---------------------------------------------------------------

_OLD_LAKE_TABLES = {
    "stages": """CREATE TABLE __stageflight.stages (name VARCHAR, kind VARCHAR NOT NULL, url VARCHAR,
        file_format VARCHAR NOT NULL DEFAULT '{}', connection VARCHAR NOT NULL DEFAULT '{}',
        comment VARCHAR, creator VARCHAR, created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
    "file_formats": """CREATE TABLE __stageflight.file_formats (name VARCHAR, options VARCHAR NOT NULL,
        creator VARCHAR, created_on TIMESTAMPTZ NOT NULL DEFAULT now())""",
}
_COLUMNS = {
    "stages": "name, kind, url, file_format, connection, comment, creator, created_on",
    "file_formats": "name, options, creator, created_on",
}


def _to_old_lake(pg_cluster: PgCluster, schema: str, base: Path) -> None:
    """Move the stage and file-format rows from the PostgreSQL catalog into the lake's reserved
    schema, where the older release kept them (the catalog then had no such tables)."""
    with pg_cluster.admin() as pg:
        rows = {t: pg.execute(f"SELECT {c} FROM {schema}.{t}").fetchall() for t, c in _COLUMNS.items()}
        for table in _COLUMNS:
            pg.execute(f"DROP TABLE {schema}.{table}")
    con = duckdb.connect()
    try:
        attach_bare_lake(con, pg_cluster, schema, base)
        for table, ddl in _OLD_LAKE_TABLES.items():
            con.execute(ddl)
            marks = ", ".join("?" for _ in _COLUMNS[table].split(","))
            con.executemany(f"INSERT INTO __stageflight.{table} VALUES ({marks})", rows[table])
    finally:
        con.close()


def test_nodes_starting_together_on_an_old_lake_move_its_stages_and_file_formats(pg_cluster, tmp_path):
    schema = pg_cluster.new_schema()
    user, password = "oldlake_alice", "pw-oldlake-alice"
    try:
        with _lake_nodes(pg_cluster, tmp_path, schema, together=False) as nodes, _connect(nodes["a"]) as ra:
            execute(ra, f"CREATE USER {user} IDENTIFIED BY '{password}'")
            execute(ra, "CREATE STAGE old_int")
            execute(ra, f"GRANT READ ON STAGE old_int TO {user}")
            execute(
                ra,
                "CREATE STAGE old_ext URL = 's3://some-bucket/p/' "
                f"CONNECTION = (ACCESS_KEY_ID = 'AKIAOLDLAKE', SECRET_ACCESS_KEY = '{SECRET}')",
            )
            execute(ra, "CREATE FILE FORMAT old_fmt TYPE = CSV FIELD_DELIMITER = ';'")
        _to_old_lake(pg_cluster, schema, tmp_path)
        assert {"stages", "file_formats"} <= _lake_tables(pg_cluster, schema)
        folder = tmp_path / "shared" / "stage" / "internal" / "old_int"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "f.csv").write_bytes(b"1;a\n")
        with _lake_nodes(pg_cluster, tmp_path, schema, together=True) as nodes:
            for node in (nodes["a"], nodes["b"]):
                with _connect(node) as root:
                    assert {"old_int", "old_ext"} <= {r["name"] for r in query(root, "SHOW STAGES")}
                    [ext] = query(root, "DESC STAGE old_ext")  # the sealed credentials open
                    assert json.loads(ext["storage_params"])["SECRET_ACCESS_KEY"] == "La***aa"
                    [fmt] = [r for r in query(root, "SHOW FILE FORMATS") if r["name"] == "old_fmt"]
                    assert "field_delimiter = ';'" in fmt["format_options"]
                with _connect_as(node, user, password) as alice:
                    assert [r["name"] for r in query(alice, "LIST @old_int")] == ["f.csv"]  # grant holds
            logs = nodes["a"].log_text() + nodes["b"].log_text()
            assert "Traceback" not in logs and "not moved" not in logs
        assert not {"stages", "file_formats"} & _lake_tables(pg_cluster, schema)
        keys = _primary_keys(pg_cluster, schema)
        assert keys["stages"] == ["name"] and keys["file_formats"] == ["name"]
        with pg_cluster.admin() as pg:
            stored = dict(pg.execute(f"SELECT name, connection FROM {schema}.stages").fetchall())
        assert sorted(stored) == ["old_ext", "old_int"]
        assert stored["old_ext"].startswith("enc:v1:") and SECRET not in stored["old_ext"]
    finally:
        pg_cluster.drop_schema(schema)


def test_sessions_racing_to_create_one_stage_and_write_to_it_keep_every_file(lake, roots):
    """Each of 8 sessions on two nodes runs CREATE STAGE IF NOT EXISTS and at once unloads a file
    into the stage. A session that found the name free must not wipe the prefix (the leftovers
    of a dropped stage) after another session's CREATE won and its files landed: CREATE and DROP
    of one stage name take the name's lock on every node."""
    ra, _ = roots
    name = _name("racew")
    conns = [_connect(lake["ab"[n % 2]]) for n in range(8)]
    barrier = threading.Barrier(len(conns))
    errors: list[BaseException] = []

    def run(n: int, conn: Any) -> None:
        barrier.wait()
        try:
            execute(conn, f"CREATE STAGE IF NOT EXISTS {name}")
            execute(conn, f"COPY INTO @{name}/s{n}/ FROM (SELECT {n} AS v) FILE_FORMAT = (TYPE = CSV)")
        except BaseException as exc:  # asserted below
            errors.append(exc)

    try:
        workers = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(conns)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
    finally:
        for conn in conns:
            conn.close()
    assert errors == []
    listed = sorted(r["name"].split("/")[0] for r in query(ra, f"LIST @{name}"))
    assert listed == [f"s{n}" for n in range(8)]
    execute(ra, f"DROP STAGE {name}")
