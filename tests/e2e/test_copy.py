"""COPY INTO a table from stages and out to stages, over ADBC against the real server."""

from __future__ import annotations

import gzip
import io
import json
import re
from decimal import Decimal

import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.stage_helpers import execute, get, put, query

CSV_HEADER = "FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)"


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.fixture
def table(user, unique_table):
    name = unique_table("load")
    execute(user, f"CREATE TABLE {name} (id INTEGER, name VARCHAR)")
    return name


def test_copy_csv_output_and_rows(user, table):
    put(user, "@~/in/a.csv", b"id,name\n1,x\n2,y\n")
    put(user, "@~/in/b.csv", b"id,name\n3,z\n")
    with user.cursor() as cur:
        cur.execute(f"COPY INTO {table} FROM @~/in/ {CSV_HEADER}")
        assert [d[0] for d in cur.description] == [
            "File",
            "Rows_loaded",
            "Errors_seen",
            "First_error",
            "First_error_line",
        ]
        rows = cur.fetch_arrow_table().to_pylist()
    assert [(r["File"], r["Rows_loaded"], r["Errors_seen"]) for r in rows] == [
        ("in/a.csv", 2, 0),
        ("in/b.csv", 1, 0),
    ]
    assert query(user, f"SELECT * FROM {table} ORDER BY id") == [
        {"id": 1, "name": "x"},
        {"id": 2, "name": "y"},
        {"id": 3, "name": "z"},
    ]


def test_load_history_exactly_once_force_and_changed_file(user, table):
    put(user, "@~/h/a.csv", b"id,name\n1,x\n")
    assert len(query(user, f"COPY INTO {table} FROM @~/h/ {CSV_HEADER}")) == 1
    assert query(user, f"COPY INTO {table} FROM @~/h/ {CSV_HEADER}") == []  # already loaded: zero rows
    assert len(query(user, f"COPY INTO {table} FROM @~/h/ {CSV_HEADER} FORCE = TRUE")) == 1
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": 2}]
    put(user, "@~/h/a.csv", b"id,name\n7,changed\n8,more\n")  # same path, new content
    assert [r["Rows_loaded"] for r in query(user, f"COPY INTO {table} FROM @~/h/ {CSV_HEADER}")] == [2]
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": 4}]


def test_truncate_clears_history(user, table):
    put(user, "@~/t/a.csv", b"id,name\n1,x\n")
    query(user, f"COPY INTO {table} FROM @~/t/ {CSV_HEADER}")
    execute(user, f"TRUNCATE {table}")
    assert len(query(user, f"COPY INTO {table} FROM @~/t/ {CSV_HEADER}")) == 1
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": 1}]


def test_history_is_per_table(user, table, unique_table):
    other = unique_table("other")
    execute(user, f"CREATE TABLE {other} (id INTEGER, name VARCHAR)")
    put(user, "@~/pt/a.csv", b"id,name\n1,x\n")
    assert len(query(user, f"COPY INTO {table} FROM @~/pt/ {CSV_HEADER}")) == 1
    assert len(query(user, f"COPY INTO {other} FROM @~/pt/ {CSV_HEADER}")) == 1


def test_purge_deletes_loaded_files(user, table):
    put(user, "@~/p/a.csv", b"id,name\n1,x\n")
    put(user, "@~/p/b.csv", b"id,name\n2,y\n")
    query(user, f"COPY INTO {table} FROM @~/p/ {CSV_HEADER} PURGE = TRUE")
    assert query(user, "LIST @~/p/") == []
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": 2}]


def test_purge_waits_for_commit_and_rollback_keeps_files(user, table):
    put(user, "@~/pc/a.csv", b"id,name\n1,x\n")
    with user.cursor() as cur:
        cur.execute("BEGIN TRANSACTION")
        cur.execute(f"COPY INTO {table} FROM @~/pc/ {CSV_HEADER} PURGE = TRUE")
        cur.fetchall()
        assert [r["name"] for r in query(user, "LIST @~/pc/")] == ["pc/a.csv"]  # not yet purged
        cur.execute("ROLLBACK")
    assert [r["name"] for r in query(user, "LIST @~/pc/")] == ["pc/a.csv"]
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]
    # Nothing was recorded either: the file loads now.
    assert len(query(user, f"COPY INTO {table} FROM @~/pc/ {CSV_HEADER}")) == 1


def test_aborted_copy_loads_and_records_nothing(user, table):
    put(user, "@~/ab/a.csv", b"id,name\n1,x\n")
    put(user, "@~/ab/b.csv", b"id,name\nnot_a_number,y\n")
    with pytest.raises(
        dbapi.Error,
        match=r"abort after 1 errors! The first error at file 'ab/b\.csv', line 2: "
        r"Invalid value 'not_a_number' for column 0 \(id int32\)",
    ):
        query(user, f"COPY INTO {table} FROM @~/ab/ {CSV_HEADER}")
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]
    put(user, "@~/ab/b.csv", b"id,name\n2,y\n")
    assert [r["File"] for r in query(user, f"COPY INTO {table} FROM @~/ab/ {CSV_HEADER}")] == [
        "ab/a.csv",
        "ab/b.csv",
    ]


BAD_CSV = b"1,a\nx,b\n3,c\ny,d\nz,e\nw,f\n7,g\n"  # bad ids on lines 2, 4, 5, 6


@pytest.mark.parametrize(
    "on_error, loaded, errors", [("CONTINUE", 3, 4), ("ABORT_5", 3, 4), ("SKIP_FILE", 0, None)]
)
def test_on_error_modes(user, table, on_error, loaded, errors):
    put(user, "@~/oe/bad.csv", BAD_CSV)
    [row] = query(user, f"COPY INTO {table} FROM @~/oe/ FILE_FORMAT = (TYPE = CSV) ON_ERROR = {on_error}")
    assert (row["Rows_loaded"], row["First_error_line"]) == (loaded, 2)
    assert row["Errors_seen"] == errors if errors is not None else row["Errors_seen"] >= 1
    assert row["First_error"]
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": loaded}]


@pytest.mark.parametrize("on_error", ["ABORT", "ABORT_4"])
def test_on_error_abort(user, table, on_error):
    put(user, "@~/oa/bad.csv", BAD_CSV)
    errors = 4 if on_error == "ABORT_4" else 1
    with pytest.raises(
        dbapi.Error,
        match=rf"abort after {errors} errors! The first error at file 'oa/bad\.csv', line 2: "
        r"Invalid value 'x' for column 0 \(id int32\)",
    ):
        query(user, f"COPY INTO {table} FROM @~/oa/ FILE_FORMAT = (TYPE = CSV) ON_ERROR = {on_error}")
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]


def test_bad_on_error_is_named(user, table):
    put(user, "@~/x/a.csv", b"1,a\n")
    with pytest.raises(
        dbapi.Error,
        match=re.escape(
            "ON_ERROR must be one of CONTINUE | SKIP_FILE | SKIP_FILE_<num> | ABORT | ABORT_<num>"
        ),
    ):
        query(user, f"COPY INTO {table} FROM @~/x/ FILE_FORMAT = (TYPE = CSV) ON_ERROR = ABORT_0")


def test_return_failed_only(user, table):
    put(user, "@~/rf/good.csv", b"1,a\n")
    put(user, "@~/rf/bad.csv", b"x,a\n2,b\n")
    rows = query(
        user,
        f"COPY INTO {table} FROM @~/rf/ FILE_FORMAT = (TYPE = CSV) ON_ERROR = CONTINUE "
        "RETURN_FAILED_ONLY = TRUE",
    )
    assert [(r["File"], r["Errors_seen"]) for r in rows] == [("rf/bad.csv", 1)]


def test_files_pattern_max_files(user, table):
    for i in range(4):
        put(user, f"@~/sel/f{i}.csv", f"{i},n{i}\n".encode())
    put(user, "@~/sel/skip.txt", b"9,n\n")
    fmt = "FILE_FORMAT = (TYPE = CSV)"
    assert [
        r["File"] for r in query(user, f"COPY INTO {table} FROM @~/sel/ FILES = ('f1.csv', 'f3.csv') {fmt}")
    ] == ["sel/f1.csv", "sel/f3.csv"]
    assert [
        r["File"]
        for r in query(user, f"COPY INTO {table} FROM @~/sel/ PATTERN = '.*[.]csv' {fmt} MAX_FILES = 1")
    ] == ["sel/f0.csv"]
    assert [r["File"] for r in query(user, f"COPY INTO {table} FROM @~/sel/ PATTERN = '.*[.]csv' {fmt}")] == [
        "sel/f2.csv"
    ]
    assert query(user, f"COPY INTO {table} FROM @~/sel/ PATTERN = '.*[.]csv' {fmt}") == []


def test_column_list_and_parquet_by_name(user, unique_table):
    t = unique_table("pq")
    execute(user, f"CREATE TABLE {t} (id BIGINT, label VARCHAR, extra DOUBLE DEFAULT 1.5)")
    put(user, "@~/pq/a.parquet", parquet_bytes(pa.table({"LABEL": ["p", "q"], "id": [10, 20]})))
    rows = query(user, f"COPY INTO {t} (id, label) FROM @~/pq/ FILE_FORMAT = (TYPE = PARQUET)")
    assert rows[0]["Rows_loaded"] == 2
    assert query(user, f"SELECT id, label, extra FROM {t} ORDER BY id") == [
        {"id": 10, "label": "p", "extra": 1.5},
        {"id": 20, "label": "q", "extra": 1.5},
    ]
    with pytest.raises(dbapi.Error, match="does not have a column with name nope"):
        query(user, f"COPY INTO {t} (nope) FROM @~/pq/ FORCE = TRUE")


def test_parquet_is_the_default_format(user, unique_table):
    t = unique_table("dflt")
    execute(user, f"CREATE TABLE {t} (a INTEGER)")
    put(user, "@~/d/x.parquet", parquet_bytes(pa.table({"a": [1, 2, 3]})))
    assert query(user, f"COPY INTO {t} FROM @~/d/")[0]["Rows_loaded"] == 3


def test_ndjson_tsv_and_gzip(user, unique_table):
    t = unique_table("fmt")
    execute(user, f"CREATE TABLE {t} (id INTEGER, name VARCHAR)")
    put(user, "@~/nd/a.ndjson", b'{"id": 1, "name": "j"}\n{"name": "k", "id": 2}\n')
    put(user, "@~/tsv/a.tsv", b"3\tt\n4\t\\N\n")
    put(user, "@~/gz/a.csv.gz", gzip.compress(b"5,g\n"))
    query(user, f"COPY INTO {t} FROM @~/nd/ FILE_FORMAT = (TYPE = NDJSON)")
    query(user, f"COPY INTO {t} FROM @~/tsv/ FILE_FORMAT = (TYPE = TSV)")
    query(user, f"COPY INTO {t} FROM @~/gz/ FILE_FORMAT = (TYPE = CSV COMPRESSION = AUTO)")
    assert query(user, f"SELECT * FROM {t} ORDER BY id") == [
        {"id": 1, "name": "j"},
        {"id": 2, "name": "k"},
        {"id": 3, "name": "t"},
        {"id": 4, "name": None},
        {"id": 5, "name": "g"},
    ]


def test_stage_format_and_named_format_precedence(server, root_conn, unique_table):
    t = unique_table("prec")
    execute(root_conn, f"CREATE TABLE {t} (id INTEGER, name VARCHAR)")
    execute(root_conn, "CREATE OR REPLACE STAGE prec_stage FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = '|')")
    execute(root_conn, "CREATE OR REPLACE FILE FORMAT semi TYPE = CSV FIELD_DELIMITER = ';' SKIP_HEADER = 1")
    put(root_conn, "@prec_stage/a.csv", b"1|a\n")
    put(root_conn, "@prec_stage/b.csv", b"h;h\n2;b\n")
    assert query(root_conn, f"COPY INTO {t} FROM @prec_stage FILES = ('a.csv')")[0]["Rows_loaded"] == 1
    rows = query(
        root_conn, f"COPY INTO {t} FROM @prec_stage FILES = ('b.csv') FILE_FORMAT = (FORMAT_NAME = 'semi')"
    )
    assert rows[0]["Rows_loaded"] == 1
    assert query(root_conn, f"SELECT * FROM {t} ORDER BY id") == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b"},
    ]
    shown = {r["name"]: r["format_options"] for r in query(root_conn, "SHOW FILE FORMATS")}
    assert "field_delimiter = ';'" in shown["semi"]
    execute(root_conn, "DROP FILE FORMAT semi")
    with pytest.raises(dbapi.Error, match="File format does not exist: semi"):
        execute(root_conn, "DROP FILE FORMAT semi")
    execute(root_conn, "DROP STAGE prec_stage")


@pytest.mark.parametrize(
    "sql, message",
    [
        (
            "COPY INTO {t} FROM @~/x/ FILE_FORMAT = (TYPE = CSV BOGUS = 1)",
            "Unknown file format option: BOGUS",
        ),
        ("COPY INTO {t} FROM @~/x/ NOPE = 1", "Unknown COPY option: NOPE"),
        ("COPY INTO {t} FROM @~/x/ MAX_FILES = 20000", "MAX_FILES must be between"),
        ("COPY INTO {t} FROM @~/x/ COLUMN_MATCH_MODE = POSITION", "COLUMN_MATCH_MODE must be one of"),
        ("COPY INTO {t} FROM '/etc/passwd'", "COPY from a URL or path is not allowed"),
        ("COPY INTO {t} FROM @~/../x/", "'..' segments are not allowed"),
        ("COPY INTO {t} FROM @nostage/", "Stage does not exist: @nostage"),
        ("COPY INTO nosuchtable FROM @~/x/", "Table with name nosuchtable does not exist"),
    ],
)
def test_copy_errors_name_the_problem(user, table, sql, message):
    with pytest.raises(dbapi.Error, match=re.escape(message)):
        query(user, sql.format(t=table))


def test_validation_mode_loads_nothing(user, table):
    put(user, "@~/v/a.csv", b"1,a\nx,b\n3,c\n")
    errors = query(
        user, f"COPY INTO {table} FROM @~/v/ FILE_FORMAT = (TYPE = CSV) VALIDATION_MODE = RETURN_ERRORS"
    )
    assert [(e["file"], e["line"], e["errors_seen"]) for e in errors] == [("v/a.csv", 2, 1)]
    put(user, "@~/v2/a.csv", b"1,a\n2,b\n3,c\n")
    rows = query(
        user, f"COPY INTO {table} FROM @~/v2/ FILE_FORMAT = (TYPE = CSV) VALIDATION_MODE = RETURN_2_ROWS"
    )
    assert rows == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]


def test_copy_needs_read_on_named_stage(server, root_conn, user, table):
    execute(root_conn, "CREATE OR REPLACE STAGE copy_priv FILE_FORMAT = (TYPE = CSV)")
    put(root_conn, "@copy_priv/a.csv", b"1,a\n")
    with pytest.raises(dbapi.ProgrammingError, match="privilege READ"):
        query(user, f"COPY INTO {table} FROM @copy_priv")
    execute(root_conn, f"GRANT READ ON STAGE copy_priv TO {user.user_name}")
    assert query(user, f"COPY INTO {table} FROM @copy_priv")[0]["Rows_loaded"] == 1
    with pytest.raises(dbapi.ProgrammingError, match="privilege WRITE"):
        query(user, f"COPY INTO @copy_priv/out/ FROM {table}")
    execute(root_conn, "DROP STAGE copy_priv")


def test_table_stage_copy(user, table):
    put(user, f"@%{table}/a.csv", b"1,a\n")
    assert query(user, f"COPY INTO {table} FROM @%{table} FILE_FORMAT = (TYPE = CSV)")[0]["Rows_loaded"] == 1


def test_unload_round_trip_and_outputs(user, table, unique_table):
    execute(user, f"INSERT INTO {table} SELECT range, 'n' || range FROM range(1000)")
    [summary] = query(user, f"COPY INTO @~/unload/ FROM {table}")
    assert summary["rows_unloaded"] == 1000 and summary["output_bytes"] > 0 and summary["input_bytes"] > 0
    files = query(user, "LIST @~/unload/")
    assert (
        len(files) == 1
        and files[0]["name"].startswith("unload/data_")
        and files[0]["name"].endswith(".parquet")
    )
    detailed = query(
        user,
        f"COPY INTO @~/unload_csv/ FROM (SELECT id FROM {table} WHERE id < 10) "
        "FILE_FORMAT = (TYPE = CSV OUTPUT_HEADER = TRUE) DETAILED_OUTPUT = TRUE",
    )
    assert [d["row_count"] for d in detailed] == [10] and detailed[0]["file_name"].endswith(".csv")
    body = get(user, "@~/" + detailed[0]["file_name"]).decode()
    # Databend's QUOTE_STYLE = QUOTE_NOT_NULL: every non-NULL field is quoted, numbers too.
    assert body.splitlines()[0].strip('"') == "id" and body.splitlines()[1:4] == ['"0"', '"1"', '"2"']
    copy_back = unique_table("back")
    execute(user, f"CREATE TABLE {copy_back} (id INTEGER, name VARCHAR)")
    assert query(user, f"COPY INTO {copy_back} FROM @~/unload/")[0]["Rows_loaded"] == 1000


def test_unload_splits_across_files_in_parallel_and_keeps_order_by(user, table):
    rows = 600_000  # several of the server's 131,072-row batches; MAX_FILE_SIZE = 1: a file per batch
    execute(user, f"INSERT INTO {table} SELECT range, 'n' || range FROM range({rows})")
    files = query(user, f"COPY INTO @~/par/ FROM {table} MAX_FILE_SIZE = 1 DETAILED_OUTPUT = TRUE")
    assert len(files) == 5 and sum(f["row_count"] for f in files) == rows
    assert [f["file_name"][-16:] for f in files] == [f"{i:08d}.parquet" for i in range(5)]
    [check] = query(
        user, "SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM @~/par/"
    )
    assert check == {"n": rows, "d": rows, "lo": 0, "hi": rows - 1}
    # ORDER BY: one file at a time, so the files read in name order give the query's order. Two
    # batches (~0.8 MB each) per file: written in parallel, a file would hold every other batch.
    ordered = query(
        user,
        f"COPY INTO @~/ord/ FROM (SELECT id, name FROM {table} ORDER BY id DESC) "
        "MAX_FILE_SIZE = 1500000 DETAILED_OUTPUT = TRUE",
    )
    assert len(ordered) == 3 and sum(f["row_count"] for f in ordered) == rows
    ids: list[int] = []
    for f in sorted(ordered, key=lambda f: f["file_name"]):
        ids += [r["id"] for r in query(user, f"SELECT id FROM @~/{f['file_name']}")]
    assert ids == list(range(rows - 1, -1, -1))


def test_unload_raw_path_overwrite_rules(user, table):
    execute(user, f"INSERT INTO {table} VALUES (1, 'a')")
    base = "FILE_FORMAT = (TYPE = CSV) SINGLE = TRUE USE_RAW_PATH = TRUE INCLUDE_QUERY_ID = FALSE"
    query(user, f"COPY INTO @~/raw/exact.csv FROM {table} {base}")
    assert [r["name"] for r in query(user, "LIST @~/raw/")] == ["raw/exact.csv"]
    with pytest.raises(dbapi.Error, match="file already exists: raw/exact[.]csv"):
        query(user, f"COPY INTO @~/raw/exact.csv FROM {table} {base}")
    query(user, f"COPY INTO @~/raw/exact.csv FROM {table} {base} OVERWRITE = TRUE")
    assert get(user, "@~/raw/exact.csv") == b'"1","a"\n'


def test_select_from_stage_and_ctas(user, unique_table):
    put(user, "@~/q/a.csv", b"1,x\n2,y\n")
    put(user, "@~/q/b.parquet", parquet_bytes(pa.table({"k": [1, 2], "v": ["one", "two"]})))
    rows = query(
        user,
        "SELECT $1 AS id, t.$2 AS name, METADATA$FILENAME AS f, METADATA$FILE_ROW_NUMBER AS r "
        "FROM @~/q/ (FILE_FORMAT => 'CSV', PATTERN => '.*csv') t ORDER BY r",
    )
    assert rows == [
        {"id": "1", "name": "x", "f": "q/a.csv", "r": 0},
        {"id": "2", "name": "y", "f": "q/a.csv", "r": 1},
    ]
    assert query(user, "SELECT * FROM @~/q/b.parquet ORDER BY k") == [
        {"k": 1, "v": "one"},
        {"k": 2, "v": "two"},
    ]
    t = unique_table("ctas")
    execute(user, f"CREATE TABLE {t} AS SELECT k * 10 AS k10 FROM @~/q/b.parquet")
    assert query(user, f"SELECT sum(k10) AS s FROM {t}") == [{"s": 30}]
    joined = query(
        user, f"SELECT s.v, t.k10 FROM @~/q/b.parquet s JOIN {t} t ON t.k10 = s.k * 10 ORDER BY t.k10"
    )
    assert [r["v"] for r in joined] == ["one", "two"]


def test_copy_result_is_json_free_of_tracebacks(user, table):
    with pytest.raises(
        dbapi.OperationalError, match=r"File does not exist: \S*nothing/here/missing\.csv"
    ) as err:
        query(user, f"COPY INTO {table} FROM @~/nothing/here/ FILES = ('missing.csv')")
    assert "Traceback" not in str(err.value)


def test_copy_with_transform(user, unique_table):
    t = unique_table("tr")
    execute(user, f"CREATE TABLE {t} (id INTEGER, name VARCHAR, src VARCHAR)")
    put(user, "@~/tr/a.csv", b"id,name\n1,x\n2,y\n")
    rows = query(
        user,
        f"COPY INTO {t} FROM (SELECT $1::INT + 100, upper(t.$2), METADATA$FILENAME FROM @~/tr/ t) "
        "FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)",
    )
    assert [(r["File"], r["Rows_loaded"]) for r in rows] == [("tr/a.csv", 2)]
    assert query(user, f"SELECT * FROM {t} ORDER BY id") == [
        {"id": 101, "name": "X", "src": "tr/a.csv"},
        {"id": 102, "name": "Y", "src": "tr/a.csv"},
    ]
    with pytest.raises(dbapi.Error, match=r"Number of columns in select list \(1\) does not match"):
        query(user, f"COPY INTO {t} FROM (SELECT $1 FROM @~/tr/) FILE_FORMAT = (TYPE = CSV)")
    with pytest.raises(dbapi.Error, match="WHERE is not allowed"):
        query(
            user,
            f"COPY INTO {t} FROM (SELECT $1, $2, $2 FROM @~/tr/ WHERE $1 > 1) FILE_FORMAT = (TYPE = CSV)",
        )


def test_infer_schema_and_list_stage(user):
    put(user, "@~/inf/a.parquet", parquet_bytes(pa.table({"id": pa.array([1], pa.int64()), "v": ["x"]})))
    rows = query(user, "SELECT column_name, type, order_id FROM INFER_SCHEMA(LOCATION => '@~/inf/')")
    assert rows == [
        {"column_name": "id", "type": "BIGINT", "order_id": 0},
        {"column_name": "v", "type": "VARCHAR", "order_id": 1},
    ]
    listed = query(user, "SELECT name, size FROM LIST_STAGE(LOCATION => '@~/inf/', PATTERN => '.*parquet')")
    assert [r["name"] for r in listed] == ["inf/a.parquet"]
    with pytest.raises(dbapi.Error, match="'..' segments are not allowed"):
        query(user, "SELECT * FROM LIST_STAGE(LOCATION => '@~/../x/')")


def test_parquet_type_error_names_the_file(user, unique_table):
    t = unique_table("pqerr")
    execute(user, f"CREATE TABLE {t} (id INTEGER)")
    put(user, "@~/pqe/good.parquet", parquet_bytes(pa.table({"id": ["1", "2"]})))
    put(user, "@~/pqe/bad.parquet", parquet_bytes(pa.table({"id": ["3", "not-a-number"]})))
    with pytest.raises(
        dbapi.Error,
        match=r"abort after 1 errors! The first error at file 'pqe/bad\.parquet', line 2: "
        r"Invalid value 'not-a-number' for column 0 \(id int32\)",
    ):
        query(user, f"COPY INTO {t} FROM @~/pqe/")
    assert query(user, f"SELECT count(*) AS n FROM {t}") == [{"n": 0}]  # nothing half-loaded
    rows = query(user, f"COPY INTO {t} FROM @~/pqe/ ON_ERROR = CONTINUE")
    assert [(r["File"], r["Rows_loaded"], r["Errors_seen"]) for r in rows] == [
        ("pqe/bad.parquet", 1, 1),
        ("pqe/good.parquet", 2, 0),
    ]


def test_many_small_files(server, user, table):
    stage_dir = server.config.data_dir / "storage" / "stage" / "user" / user.user_name / "many"
    stage_dir.mkdir(parents=True)
    for i in range(150):
        (stage_dir / f"f{i:03d}.csv").write_text(f"{i},n{i}\n")
    rows = query(user, f"COPY INTO {table} FROM @~/many/ FILE_FORMAT = (TYPE = CSV)")
    assert len(rows) == 150 and all(r["Rows_loaded"] == 1 for r in rows)
    assert rows[0]["File"] == "many/f000.csv" and rows[-1]["File"] == "many/f149.csv"
    assert query(user, f"SELECT count(*) AS n, sum(id) AS s FROM {table}") == [
        {"n": 150, "s": sum(range(150))}
    ]
    (stage_dir / "f150.csv").write_text("oops,x\n")
    with pytest.raises(
        dbapi.Error,
        match=r"The first error at file 'many/f150\.csv', line 1: Invalid value 'oops' for column 0",
    ):
        query(user, f"COPY INTO {table} FROM @~/many/ FILE_FORMAT = (TYPE = CSV) FORCE = TRUE")
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": 150}]


@pytest.mark.parametrize(
    ("file_format", "message"),
    [
        ("TYPE = CSV ENCODING = 'latin1'", "ENCODING latin1 is not supported: files must be UTF-8"),
        ("TYPE = PARQUET USE_LOGIC_TYPE = TRUE", "File format option USE_LOGIC_TYPE is not supported yet"),
    ],
)
def test_unimplemented_options_are_refused_not_ignored(user, table, file_format, message):
    with pytest.raises(dbapi.Error, match=re.escape(message)):
        query(user, f"COPY INTO {table} FROM @~/x/ FILE_FORMAT = ({file_format})")


def test_size_limit_and_select_files_option(user, table):
    for i in range(3):
        put(user, f"@~/sz/f{i}.csv", f"{i},{'x' * 50}\n".encode())
    rows = query(user, f"COPY INTO {table} FROM @~/sz/ FILE_FORMAT = (TYPE = CSV) SIZE_LIMIT = 60")
    assert [r["File"] for r in rows] == ["sz/f0.csv"]  # at least one file, then stop at the limit
    picked = query(
        user, "SELECT $1 AS id FROM @~/sz/ (FILE_FORMAT => 'CSV', FILES => ('f2.csv', 'f1.csv')) ORDER BY 1"
    )
    assert picked == [{"id": "1"}, {"id": "2"}]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("__stageflight.users", "Name __stageflight is reserved for the server"),
        ("duckdb_settings", "System view duckdb_settings is not allowed"),
        ("(SELECT * FROM read_text('/etc/passwd'))", "Function read_text is not allowed"),
        ("(SELECT password_hash FROM __stageflight.users)", "Schema __stageflight is reserved"),
    ],
)
def test_unload_source_passes_the_guard(user, source, message):
    with pytest.raises(dbapi.Error, match=re.escape(message)):
        query(user, f"COPY INTO @~/leak/ FROM {source}")
    assert query(user, "LIST @~/leak/") == []


def test_null_if_in_csv_ndjson_and_parquet(user, unique_table):
    t = unique_table("nullif")
    execute(user, f"CREATE TABLE {t} (id INTEGER, name VARCHAR, d DATE)")
    put(user, "@~/ni/a.csv", b"1,NULL,2024-01-02\n-,x,-\n3,,n/a\n")
    records = [{"id": 4, "name": "NULL", "d": "2024-01-05"}, {"id": 5, "name": "-", "d": "-"}]
    put(user, "@~/ni/b.ndjson", "".join(json.dumps(r) + "\n" for r in records).encode())
    table = pa.table({"id": [6, 7], "name": ["y", "NULL"], "d": ["-", "2024-01-07"]})
    put(user, "@~/ni/c.parquet", parquet_bytes(table))
    null_if = "NULL_IF = ('NULL', '-', 'n/a')"
    for name, kind, count in (("a.csv", "CSV", 3), ("b.ndjson", "NDJSON", 2), ("c.parquet", "PARQUET", 2)):
        rows = query(user, f"COPY INTO {t} FROM @~/ni/{name} FILE_FORMAT = (TYPE = {kind} {null_if})")
        assert [(r["File"], r["Rows_loaded"], r["Errors_seen"]) for r in rows] == [(f"ni/{name}", count, 0)]
    got = query(user, f"SELECT id, name, CAST(d AS VARCHAR) AS d FROM {t} ORDER BY id NULLS FIRST")
    assert got == [
        {"id": None, "name": "x", "d": None},
        {"id": 1, "name": None, "d": "2024-01-02"},
        {"id": 3, "name": None, "d": None},
        {"id": 4, "name": None, "d": "2024-01-05"},
        {"id": 5, "name": None, "d": None},
        {"id": 6, "name": "y", "d": None},
        {"id": 7, "name": None, "d": "2024-01-07"},
    ]


def test_null_if_in_a_named_format_and_stage_queries(user):
    execute(user, "CREATE OR REPLACE FILE FORMAT csv_nulls TYPE = CSV NULL_IF = ('NULL', 'it''s')")
    shown = {r["name"]: r["format_options"] for r in query(user, "SHOW FILE FORMATS")}
    assert shown["csv_nulls"] == "type = CSV null_if = ('NULL', 'it''s')"
    put(user, "@~/nq/a.csv", b"1,NULL\n2,it's\n3,z\n")
    rows = query(user, "SELECT $1 AS id, $2 AS v FROM @~/nq/a.csv (FILE_FORMAT => 'csv_nulls') ORDER BY 1")
    assert rows == [{"id": "1", "v": None}, {"id": "2", "v": None}, {"id": "3", "v": "z"}]
    execute(user, "DROP FILE FORMAT csv_nulls")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("TYPE = CSV NULL_IF = 'x'", "NULL_IF must be a list of strings in parentheses"),
        ("TYPE = CSV NULL_IF = ('a',)", "NULL_IF must be a list of strings in parentheses"),
        ("TYPE = TSV NULL_IF = ('a')", "Unsupported option NULL_IF for file format TSV"),
    ],
)
def test_bad_null_if_is_named(user, table, option, message):
    with pytest.raises(dbapi.Error, match=message):
        query(user, f"COPY INTO {table} FROM @~/x/ FILE_FORMAT = ({option})")


def test_select_from_compressed_staged_files(user):
    put(user, "@~/gz/a.csv.gz", gzip.compress(b"1,x\n2,y\n"))
    put(user, "@~/gz/b.ndjson.gz", gzip.compress(b'{"k": 1, "v": "one"}\n{"k": 2}\n'))
    assert query(user, "SELECT $1 AS a, $2 AS b FROM @~/gz/a.csv.gz (FILE_FORMAT => 'CSV')") == [
        {"a": "1", "b": "x"},
        {"a": "2", "b": "y"},
    ]
    assert query(user, "SELECT * FROM @~/gz/b.ndjson.gz (FILE_FORMAT => 'NDJSON') ORDER BY k") == [
        {"k": 1, "v": "one"},
        {"k": 2, "v": None},
    ]


@pytest.mark.parametrize(
    ("name", "data", "fmt", "message"),
    [
        (
            "a.csv",
            b"1,x\n2,y,z\n",
            "CSV",
            "bad/a.csv: CSV parse error: Expected 2 columns",
        ),
        (
            "p.parquet",
            b"not parquet",
            "PARQUET",
            "bad/p.parquet: Parquet magic bytes",
        ),
        (
            "n.ndjson",
            b'{"a": 1}\n{"a": "x"}\n',
            "NDJSON",
            "bad/n.ndjson: JSON parse error",
        ),
        ("e.csv", b"", "CSV", "bad/e.csv: Empty CSV file"),
    ],
)
def test_select_from_unreadable_staged_file_names_it(user, name, data, fmt, message):
    put(user, f"@~/bad/{name}", data)
    with pytest.raises(dbapi.Error, match="Cannot read staged file " + message):
        query(user, f"SELECT * FROM @~/bad/{name} (FILE_FORMAT => '{fmt}')")
    assert query(user, "SELECT 1 AS ok") == [{"ok": 1}]  # the session keeps serving


def test_select_error_deep_in_a_staged_file_names_it(user):
    # Past the first block, the error surfaces inside DuckDB's scan of the reader.
    put(user, "@~/mid/a.csv", b"".join(b"%d,x\n" % i for i in range(600_000)) + b"1,2,3\n")
    with pytest.raises(dbapi.Error, match="Cannot read staged file mid/a.csv: CSV parse error") as raised:
        query(user, "SELECT count(*) AS n FROM @~/mid/a.csv (FILE_FORMAT => 'CSV')")
    assert "__stage_" not in str(raised.value) and "Traceback" not in str(raised.value)


def test_select_skips_empty_files_after_the_first(user):
    put(user, "@~/em/a.csv", b"1,x\n")
    put(user, "@~/em/b.csv", b"")
    rows = query(user, "SELECT $1 AS a FROM @~/em/ (FILE_FORMAT => 'CSV')")
    assert rows == [{"a": "1"}]


def test_iso_timestamps_with_z_load_and_compressed_infer_schema(user, unique_table):
    t = unique_table("ts")
    execute(user, f"CREATE TABLE {t} (id INTEGER, at TIMESTAMP)")
    csv = b"id,at\n1,2024-01-02T11:00:00Z\n2,2024-01-02 12:30:00+01:00\n"
    put(user, "@~/ts/a.csv.gz", gzip.compress(csv))
    rows = query(user, f"COPY INTO {t} FROM @~/ts/ FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
    assert [(r["Rows_loaded"], r["Errors_seen"]) for r in rows] == [(2, 0)]
    assert query(user, f"SELECT id, CAST(at AS VARCHAR) AS at FROM {t} ORDER BY id") == [
        {"id": 1, "at": "2024-01-02 11:00:00"},
        {"id": 2, "at": "2024-01-02 12:30:00"},
    ]
    execute(user, "CREATE OR REPLACE FILE FORMAT ts_header TYPE = CSV SKIP_HEADER = 1")
    inferred = query(
        user,
        "SELECT column_name FROM INFER_SCHEMA(LOCATION => '@~/ts/a.csv.gz', FILE_FORMAT => 'ts_header') "
        "ORDER BY order_id",
    )
    assert [r["column_name"] for r in inferred] == ["id", "at"]
    execute(user, "DROP FILE FORMAT ts_header")


def test_ndjson_into_json_decimal_boolean_and_nested_columns(user, unique_table):
    t = unique_table("nj")
    execute(
        user,
        f"CREATE TABLE {t} (id INTEGER, d DECIMAL(10,2), ok BOOLEAN, j JSON, l INTEGER[], s STRUCT(a INT))",
    )
    records = [
        {"id": 1, "d": 1.25, "ok": True, "j": {"x": [1, "é"]}, "l": [1, 2], "s": {"a": 1}},
        {"id": 2, "d": "3.5", "ok": "yes", "j": "text", "l": [], "s": None},
        {"id": 3, "d": 7, "ok": "F", "j": 5, "l": None, "s": {"a": None}},
    ]
    put(user, "@~/nj/a.ndjson", "".join(json.dumps(r) + "\n" for r in records).encode())
    rows = query(user, f"COPY INTO {t} FROM @~/nj/a.ndjson FILE_FORMAT = (TYPE = NDJSON)")
    assert [(r["Rows_loaded"], r["Errors_seen"]) for r in rows] == [(3, 0)]
    got = query(user, f"SELECT id, d, ok, j, json_type(j) AS jt, l, s FROM {t} ORDER BY id")
    assert [(r["d"], r["ok"], r["jt"]) for r in got] == [
        (Decimal("1.25"), True, "OBJECT"),
        (Decimal("3.50"), True, "VARCHAR"),
        (Decimal("7.00"), False, "UBIGINT"),
    ]
    assert json.loads(got[0]["j"]) == {"x": [1, "é"]} and json.loads(got[1]["j"]) == "text"
    assert [r["l"] for r in got] == [[1, 2], [], None]
    assert [r["s"] for r in got] == [{"a": 1}, None, {"a": None}]


def test_csv_booleans_as_duckdb_reads_them(user, unique_table):
    t = unique_table("b")
    execute(user, f"CREATE TABLE {t} (id INTEGER, ok BOOLEAN)")
    put(user, "@~/bo/a.csv", b"1,true\n2,F\n3,Yes\n4,n\n5,1\n6,tRuE\n7,maybe\n")
    rows = query(user, f"COPY INTO {t} FROM @~/bo/a.csv FILE_FORMAT = (TYPE = CSV) ON_ERROR = CONTINUE")
    assert [(r["Rows_loaded"], r["Errors_seen"], r["First_error_line"]) for r in rows] == [(6, 1, 7)]
    assert "Could not convert 'maybe' to BOOLEAN" in rows[0]["First_error"]
    got = query(user, f"SELECT ok FROM {t} ORDER BY id")
    assert [r["ok"] for r in got] == [True, False, True, False, True, True]


def test_field_default_fills_column_defaults(user, unique_table):
    t = unique_table("fd")
    execute(user, f"CREATE SEQUENCE {t}_seq")
    execute(
        user,
        f"CREATE TABLE {t} (id INTEGER DEFAULT nextval('{t}_seq'), name VARCHAR DEFAULT 'anon', "
        "n INTEGER DEFAULT 7, note VARCHAR)",
    )
    # CSV: an empty field takes the default; \\N stays NULL; per-row defaults (nextval) stay NULL.
    put(user, "@~/fd/a.csv", b"1,,,x\n2,\\N,5,\n,b,,y\n")
    csv = "FILE_FORMAT = (TYPE = CSV EMPTY_FIELD_AS = FIELD_DEFAULT)"
    assert [r["Rows_loaded"] for r in query(user, f"COPY INTO {t} FROM @~/fd/a.csv {csv}")] == [3]
    # TSV: FIELD_DEFAULT is its default.
    put(user, "@~/fd/b.tsv", b"3\t\t\tz\n")
    query(user, f"COPY INTO {t} FROM @~/fd/b.tsv FILE_FORMAT = (TYPE = TSV)")
    # NDJSON: a missing key and an explicit null, each with its own option.
    put(user, "@~/fd/c.ndjson", b'{"id": 4, "note": "m"}\n{"id": 5, "name": null, "n": null, "note": "n"}\n')
    nd = "FILE_FORMAT = (TYPE = NDJSON MISSING_FIELD_AS = FIELD_DEFAULT NULL_FIELD_AS = FIELD_DEFAULT)"
    query(user, f"COPY INTO {t} FROM @~/fd/c.ndjson {nd}")
    # Parquet: a column missing from the file.
    put(user, "@~/fd/d.parquet", parquet_bytes(pa.table({"id": [6], "note": ["p"]})))
    query(
        user,
        f"COPY INTO {t} FROM @~/fd/d.parquet FILE_FORMAT = (TYPE = PARQUET MISSING_FIELD_AS = FIELD_DEFAULT)",
    )
    got = query(user, f"SELECT id, name, n, note FROM {t} ORDER BY id NULLS LAST")
    assert got == [
        {"id": 1, "name": "anon", "n": 7, "note": "x"},
        {"id": 2, "name": None, "n": 5, "note": None},
        {"id": 3, "name": "anon", "n": 7, "note": "z"},
        {"id": 4, "name": "anon", "n": 7, "note": "m"},
        {"id": 5, "name": "anon", "n": 7, "note": "n"},
        {"id": 6, "name": "anon", "n": 7, "note": "p"},
        {"id": None, "name": "b", "n": 7, "note": "y"},
    ]


def test_field_default_of_a_json_column_is_its_json(user, unique_table):
    t = unique_table("fj")
    execute(user, f"""CREATE TABLE {t} (id INTEGER, j JSON DEFAULT '{{"k": 1}}')""")
    put(user, "@~/fj/a.ndjson", b'{"id": 1}\n{"id": 2, "j": [2]}\n')
    fmt = "FILE_FORMAT = (TYPE = NDJSON MISSING_FIELD_AS = FIELD_DEFAULT)"
    query(user, f"COPY INTO {t} FROM @~/fj/a.ndjson {fmt}")
    got = query(user, f"SELECT id, j FROM {t} ORDER BY id")
    assert [(r["id"], json.loads(r["j"])) for r in got] == [(1, {"k": 1}), (2, [2])]


def test_corrupt_compressed_file_error_is_clean(user, table):
    put(user, "@~/cz/a.csv.gz", b"this is not gzip data")
    with pytest.raises(
        dbapi.Error, match=re.escape("zlib inflate failed: incorrect header check (file 'cz/a.csv.gz')")
    ) as raised:
        query(user, f"COPY INTO {table} FROM @~/cz/a.csv.gz FILE_FORMAT = (TYPE = CSV)")
    message = str(raised.value)
    assert "Traceback" not in message and "__stage_" not in message
    with pytest.raises(dbapi.Error, match="Cannot read staged file cz/a.csv.gz") as raised:
        query(user, "SELECT * FROM @~/cz/a.csv.gz (FILE_FORMAT => 'CSV')")
    assert "Traceback" not in str(raised.value)


# A file with quoted and bare empty fields and \N: one clean (Arrow's fast reader) and one with a bad
# row first (ON_ERROR = CONTINUE re-reads it with the careful reader). Both must load the same values.
_QUOTED_CSV = b'1,"",x\n2,,"\\N"\n3,"a,""b""",\\N\n'
_QUOTED_BAD_FIRST = b"one field only\n" + _QUOTED_CSV


@pytest.mark.parametrize("data", [_QUOTED_CSV, _QUOTED_BAD_FIRST], ids=["clean", "careful"])
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # Databend's defaults: a quoted empty field is '', a bare one NULL; a quoted \N is text.
        ("", [("1", "", "x"), ("2", None, "\\N"), ("3", 'a,"b"', None)]),
        ("QUOTED_EMPTY_FIELD_AS = NULL", [("1", None, "x"), ("2", None, "\\N"), ("3", 'a,"b"', None)]),
        (
            "QUOTED_EMPTY_FIELD_AS = FIELD_DEFAULT",
            [("1", "dflt", "x"), ("2", None, "\\N"), ("3", 'a,"b"', None)],
        ),
        ("ALLOW_QUOTED_NULLS = TRUE", [("1", "", "x"), ("2", None, None), ("3", 'a,"b"', None)]),
        (
            "EMPTY_FIELD_AS = STRING QUOTED_EMPTY_FIELD_AS = NULL",
            [("1", None, "x"), ("2", "", "\\N"), ("3", 'a,"b"', None)],
        ),
    ],
)
def test_quoted_empty_fields_and_quoted_nulls(user, unique_table, data, options, expected):
    t = unique_table("q")
    execute(user, f"CREATE TABLE {t} (id VARCHAR, a VARCHAR DEFAULT 'dflt', b VARCHAR)")
    put(user, f"@~/{t}/f.csv", data)
    result = query(
        user, f"COPY INTO {t} FROM @~/{t}/ FILE_FORMAT = (TYPE = CSV {options}) ON_ERROR = CONTINUE"
    )
    assert [r["Rows_loaded"] for r in result] == [3]
    got = query(user, f"SELECT id, a, b FROM {t} ORDER BY id")
    assert [(r["id"], r["a"], r["b"]) for r in got] == expected


def test_quoted_field_options_are_checked(user, table):
    # Checked with the statement: also when no file is there to read.
    for option, message in (
        (
            "QUOTED_EMPTY_FIELD_AS = ZERO",
            "QUOTED_EMPTY_FIELD_AS must be one of FIELD_DEFAULT | NULL | STRING, got 'ZERO'",
        ),
        ("ALLOW_QUOTED_NULLS = MAYBE", "ALLOW_QUOTED_NULLS must be TRUE or FALSE, got 'MAYBE'"),
    ):
        with pytest.raises(dbapi.Error, match=re.escape(message)):
            execute(user, f"COPY INTO {table} FROM @~/qopt/ FILE_FORMAT = (TYPE = CSV {option})")
        with pytest.raises(dbapi.Error, match=re.escape(message)):
            execute(user, f"CREATE FILE FORMAT bad_quoting TYPE = CSV {option}")
    assert query(user, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]


@pytest.mark.parametrize(
    ("binary_format", "text"),
    [
        ("", "68656c6c6f00ff"),
        ("BINARY_FORMAT = HEX", "68656C6C6F00FF"),
        ("BINARY_FORMAT = BASE64", "aGVsbG8A/w=="),
    ],
)
def test_csv_binary_format_load_and_unload(user, unique_table, binary_format, text):
    t = unique_table("bin")
    execute(user, f"CREATE TABLE {t} (id INTEGER, b BLOB)")
    put(user, f"@~/{t}/in.csv", f"1,{text}\n2,\\N\n3,not-binary!\n".encode())
    fmt = f"FILE_FORMAT = (TYPE = CSV {binary_format})"
    [result] = query(user, f"COPY INTO {t} FROM @~/{t}/in.csv {fmt} ON_ERROR = CONTINUE")
    assert (result["Rows_loaded"], result["Errors_seen"], result["First_error_line"]) == (2, 1, 3)
    assert "not-binary!" in result["First_error"] and "column 1 (b binary)" in result["First_error"]
    assert query(user, f"SELECT id, b FROM {t} ORDER BY id") == [
        {"id": 1, "b": b"hello\x00\xff"},
        {"id": 2, "b": None},
    ]
    # Unload writes the same encoding, and loads back to the same bytes.
    [out] = query(user, f"COPY INTO @~/{t}/out/ FROM {t} {fmt} DETAILED_OUTPUT = TRUE")
    lines = get(user, f"@~/{out['file_name']}").decode().splitlines()
    assert lines[0].split(",")[1].strip('"').lower() == text.lower()
    execute(user, f"COPY INTO {t} FROM @~/{t}/out/ {fmt}")
    assert query(user, f"SELECT count(*) AS n, count(DISTINCT b) AS d FROM {t}") == [{"n": 4, "d": 1}]


def test_bad_binary_format_is_named(user, table):
    with pytest.raises(dbapi.Error, match=re.escape("BINARY_FORMAT must be one of BASE64 | HEX, got 'UTF8'")):
        execute(user, f"COPY INTO {table} FROM @~/none/ FILE_FORMAT = (TYPE = CSV BINARY_FORMAT = UTF8)")


@pytest.mark.parametrize("bad_first", [False, True], ids=["clean", "careful"])
def test_trim_space_makes_blank_fields_empty_for_field_default(user, unique_table, bad_first):
    t = unique_table("trim")
    execute(user, f"CREATE TABLE {t} (id INTEGER, name VARCHAR DEFAULT 'anon', n INTEGER DEFAULT 7)")
    # Only a text column is blank: Arrow parses this file, and our trim must come before the default.
    data = b"1,   ,7\n2, bo , 5 \n"
    put(user, f"@~/{t}/f.csv", (b"one field only\n" if bad_first else b"") + data)
    fmt = "FILE_FORMAT = (TYPE = CSV TRIM_SPACE = TRUE EMPTY_FIELD_AS = FIELD_DEFAULT)"
    [result] = query(user, f"COPY INTO {t} FROM @~/{t}/ {fmt} ON_ERROR = CONTINUE")
    assert result["Rows_loaded"] == 2
    assert query(user, f"SELECT id, name, n FROM {t} ORDER BY id") == [
        {"id": 1, "name": "anon", "n": 7},
        {"id": 2, "name": "bo", "n": 5},
    ]
