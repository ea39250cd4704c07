"""File format options and stage DDL as a Databend user writes them (issue 15), over ADBC.

RECORD_DELIMITER of any single byte for load, query and unload; the option combinations Databend
refuses, refused at CREATE FILE FORMAT, CREATE STAGE and COPY; MAX_FILE_SIZE for text unloads; and
CREATE STAGE on an external store that does not contact it.
"""

from __future__ import annotations

import json
import re
import socket

import adbc_driver_manager.dbapi as dbapi
import pytest

from tests.conftest import connect
from tests.e2e.stage_helpers import execute, get, put, query

# -- RECORD_DELIMITER -------------------------------------------------------------------------


def test_semicolon_records_load_with_the_delimiter_inside_quotes_kept(root_conn, unique_table):
    table = unique_table("rd")
    execute(root_conn, f"CREATE TABLE {table} (id INTEGER, name VARCHAR)")
    put(root_conn, "@~/rd_semi/a.csv", b'1,"x;y";2,b;3,"say ""hi"";"')
    [result] = query(
        root_conn,
        f"COPY INTO {table} FROM @~/rd_semi/ FILE_FORMAT = (TYPE = CSV RECORD_DELIMITER = ';')",
    )
    assert result["Rows_loaded"] == 3
    rows = query(root_conn, f"SELECT id, name FROM {table} ORDER BY id")
    assert rows == [
        {"id": 1, "name": "x;y"},
        {"id": 2, "name": "b"},
        {"id": 3, "name": 'say "hi";'},
    ]


def test_pipe_records_in_a_stage_query_through_a_named_format(root_conn):
    execute(root_conn, "CREATE OR REPLACE FILE FORMAT pipe_records TYPE = CSV RECORD_DELIMITER = '|'")
    put(root_conn, "@~/rd_pipe/a.csv", b"1,a|2,b|3,c|")
    rows = query(
        root_conn, "SELECT $1 AS n, $2 AS s FROM @~/rd_pipe/ (FILE_FORMAT => 'pipe_records') ORDER BY n"
    )
    assert rows == [{"n": "1", "s": "a"}, {"n": "2", "s": "b"}, {"n": "3", "s": "c"}]


def test_control_byte_records_in_tsv(root_conn, unique_table):
    table = unique_table("rd")
    execute(root_conn, f"CREATE TABLE {table} (id INTEGER, name VARCHAR)")
    put(root_conn, "@~/rd_ctl/a.tsv", b"1\tone\x012\ttwo\x01")
    query(
        root_conn,
        f"COPY INTO {table} FROM @~/rd_ctl/ FILE_FORMAT = (TYPE = TSV RECORD_DELIMITER = '\\x01')",
    )
    assert query(root_conn, f"SELECT id, name FROM {table} ORDER BY id") == [
        {"id": 1, "name": "one"},
        {"id": 2, "name": "two"},
    ]


@pytest.mark.parametrize("kind", ["CSV", "TSV"])
def test_unload_with_a_record_delimiter_reads_back(root_conn, unique_table, kind):
    source, back = unique_table("src"), unique_table("back")
    execute(root_conn, f"CREATE TABLE {source} (id INTEGER, name VARCHAR)")
    execute(root_conn, f"INSERT INTO {source} VALUES (1, 'a;b'), (2, 'plain'), (3, NULL)")
    fmt = f"FILE_FORMAT = (TYPE = {kind} RECORD_DELIMITER = ';')"
    [written] = query(
        root_conn, f"COPY INTO @~/rd_out_{kind}/ FROM {source} {fmt} SINGLE = TRUE DETAILED_OUTPUT = TRUE"
    )
    body = get(root_conn, "@~/" + written["file_name"])
    assert b"\n" not in body and body.endswith(b";")
    execute(root_conn, f"CREATE TABLE {back} (id INTEGER, name VARCHAR)")
    query(root_conn, f"COPY INTO {back} FROM @~/rd_out_{kind}/ {fmt}")
    assert query(root_conn, f"SELECT id, name FROM {back} ORDER BY id") == [
        {"id": 1, "name": "a;b"},
        {"id": 2, "name": "plain"},
        {"id": 3, "name": None},
    ]


def test_record_delimiter_of_two_characters_is_refused(root_conn):
    with pytest.raises(dbapi.Error, match=r"RECORD_DELIMITER must be one ASCII character or '\\r\\n'"):
        execute(root_conn, "CREATE FILE FORMAT two_chars TYPE = CSV RECORD_DELIMITER = ';;'")


# -- refused combinations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ("FIELD_DELIMITER = 'a'", "FIELD_DELIMITER must not be a letter or digit, got 'a'"),
        ("FIELD_DELIMITER = '7'", "FIELD_DELIMITER must not be a letter or digit, got '7'"),
        ("FIELD_DELIMITER = '\"'", "FIELD_DELIMITER must differ from QUOTE"),
        ("FIELD_DELIMITER = ';' RECORD_DELIMITER = ';'", "FIELD_DELIMITER must differ from RECORD_DELIMITER"),
        ("RECORD_DELIMITER = 'x'", "RECORD_DELIMITER must not be a letter or digit"),
        ("RECORD_DELIMITER = '\"'", "RECORD_DELIMITER must differ from QUOTE"),
        ("QUOTE = '|'", "QUOTE must be one of"),
        ("ESCAPE = '|'", "ESCAPE must be '.*' or '' for CSV"),
    ],
)
def test_refused_csv_options_at_every_place_they_are_given(root_conn, unique_table, options, message):
    with pytest.raises(dbapi.Error, match=message):
        execute(root_conn, f"CREATE FILE FORMAT refused_fmt TYPE = CSV {options}")
    with pytest.raises(dbapi.Error, match=message):
        execute(root_conn, f"CREATE STAGE refused_stage FILE_FORMAT = (TYPE = CSV {options})")
    table = unique_table("refused")
    execute(root_conn, f"CREATE TABLE {table} (a VARCHAR, b VARCHAR)")
    # No file to load: the option is refused before any is looked for.
    with pytest.raises(dbapi.Error, match=message):
        query(root_conn, f"COPY INTO {table} FROM @~/nothing_here/ FILE_FORMAT = (TYPE = CSV {options})")
    with pytest.raises(dbapi.Error, match=message):
        query(root_conn, f"COPY INTO @~/refused_out/ FROM {table} FILE_FORMAT = (TYPE = CSV {options})")


def test_alphanumeric_tsv_delimiter_is_refused(root_conn):
    with pytest.raises(dbapi.Error, match="FIELD_DELIMITER must not be a letter or digit, got 'a'"):
        execute(root_conn, "CREATE FILE FORMAT tsv_a TYPE = TSV FIELD_DELIMITER = 'a'")


COLUMN_MATCH = "COLUMN_MATCH_MODE applies to PARQUET and NDJSON files only, not to CSV/TSV"


def test_column_match_mode_is_refused_for_csv_and_tsv(root_conn, unique_table):
    table = unique_table("cm")
    execute(root_conn, f"CREATE TABLE {table} (a VARCHAR)")
    put(root_conn, "@~/cm/a.csv", b"x\n")
    for fmt in ("FILE_FORMAT = (TYPE = CSV)", "FILE_FORMAT = (TYPE = TSV)"):
        with pytest.raises(dbapi.Error, match=re.escape(COLUMN_MATCH)):
            query(root_conn, f"COPY INTO {table} FROM @~/cm/ {fmt} COLUMN_MATCH_MODE = CASE_SENSITIVE")
    # The stage's own format counts too.
    execute(root_conn, "CREATE OR REPLACE STAGE cm_csv FILE_FORMAT = (TYPE = CSV)")
    with pytest.raises(dbapi.Error, match=re.escape(COLUMN_MATCH)):
        query(root_conn, f"COPY INTO {table} FROM @cm_csv COLUMN_MATCH_MODE = CASE_INSENSITIVE")
    # NDJSON takes it.
    put(root_conn, "@~/cm_json/a.ndjson", b'{"A": "y"}\n')
    query(
        root_conn,
        f"COPY INTO {table} FROM @~/cm_json/ FILE_FORMAT = (TYPE = NDJSON) "
        "COLUMN_MATCH_MODE = CASE_INSENSITIVE",
    )
    assert query(root_conn, f"SELECT a FROM {table}") == [{"a": "y"}]


# -- MAX_FILE_SIZE for text unloads -----------------------------------------------------------


def test_csv_unload_rolls_files_at_max_file_size_with_a_header_in_each(root_conn, unique_table):
    source, back = unique_table("big"), unique_table("back")
    execute(root_conn, f"CREATE TABLE {source} (id INTEGER, name VARCHAR)")
    execute(root_conn, f"INSERT INTO {source} SELECT range, 'name-' || range FROM range(1000)")
    files = query(
        root_conn,
        f"COPY INTO @~/roll_csv/ FROM {source} FILE_FORMAT = (TYPE = CSV OUTPUT_HEADER = TRUE) "
        "MAX_FILE_SIZE = 2000 DETAILED_OUTPUT = TRUE",
    )
    assert sum(f["row_count"] for f in files) == 1000
    total = sum(f["file_size"] for f in files)
    assert total > 10_000 and len(files) >= total // 2200
    # A file is closed once it passes MAX_FILE_SIZE: by less than a few rows.
    assert all(f["file_size"] <= 2000 + 200 for f in files)
    for f in files:
        body = get(root_conn, "@~/" + f["file_name"]).decode()
        assert body.splitlines()[0] == '"id","name"'
    execute(root_conn, f"CREATE TABLE {back} (id INTEGER, name VARCHAR)")
    query(root_conn, f"COPY INTO {back} FROM @~/roll_csv/ FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
    assert query(root_conn, f"SELECT count(*) AS n, count(DISTINCT id) AS d FROM {back}") == [
        {"n": 1000, "d": 1000}
    ]


@pytest.mark.parametrize("kind", ["TSV", "NDJSON"])
def test_tsv_and_ndjson_unloads_roll_too(root_conn, unique_table, kind):
    source = unique_table("big")
    execute(root_conn, f"CREATE TABLE {source} (id INTEGER, name VARCHAR)")
    execute(root_conn, f"INSERT INTO {source} SELECT range, 'name-' || range FROM range(1000)")
    files = query(
        root_conn,
        f"COPY INTO @~/roll_{kind}/ FROM {source} FILE_FORMAT = (TYPE = {kind}) "
        "MAX_FILE_SIZE = 2000 DETAILED_OUTPUT = TRUE",
    )
    assert len(files) > 3 and sum(f["row_count"] for f in files) == 1000
    assert all(f["file_size"] <= 2000 + 200 for f in files)
    if kind == "NDJSON":
        first = get(root_conn, "@~/" + files[0]["file_name"]).decode().splitlines()
        assert json.loads(first[0]) == {"id": 0, "name": "name-0"}


# -- CREATE STAGE does not contact the store --------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_create_stage_on_a_store_that_is_down_succeeds_and_list_names_it(start_server):
    port = _closed_port()
    running = start_server(allowed_endpoints=f"127.0.0.1:{port}")
    endpoint = f"http://127.0.0.1:{port}"
    connection = (
        f"CONNECTION = (ENDPOINT_URL = '{endpoint}', ACCESS_KEY_ID = 'AKIAEXAMPLE', "
        "SECRET_ACCESS_KEY = 'not-a-real-secret', REGION = 'us-east-1')"
    )
    with connect(running) as conn:
        execute(conn, f"CREATE STAGE down_store URL = 's3://bucket-x/p/' {connection}")
        assert [r["name"] for r in query(conn, "SHOW STAGES")] == ["down_store"]
        with pytest.raises(
            dbapi.Error, match=f"Cannot reach the S3 endpoint for stage @down_store at {endpoint}"
        ) as err:
            query(conn, "LIST @down_store")
        assert "not-a-real-secret" not in str(err.value)
        # Replacing and dropping it does not contact the store either.
        execute(conn, f"CREATE OR REPLACE STAGE down_store URL = 's3://bucket-x/q/' {connection}")
        execute(conn, "DROP STAGE down_store")


def test_endpoint_policy_still_applies_at_create(start_server):
    running = start_server()
    with connect(running) as conn, pytest.raises(dbapi.Error, match="loopback or private address"):
        execute(
            conn,
            f"CREATE STAGE not_allowed URL = 's3://b/x/' CONNECTION = (ENDPOINT_URL = 'http://127.0.0.1:{_closed_port()}')",
        )
