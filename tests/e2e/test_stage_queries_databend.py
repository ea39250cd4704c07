"""Querying staged files as a Databend user writes it (issue 15), over ADBC against the real server.

FILES => (...) in the stage table function, $1 as the VARIANT row of NDJSON/Parquet files with
Databend's path syntax, SELECT * refused on CSV/TSV, and the Parquet default naming FILE_FORMAT.
"""

from __future__ import annotations

import io
import json

import adbc_driver_manager.dbapi as dbapi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.e2e.stage_helpers import execute, put, query

LACKS_POSITIONS = r"Query from CSV file lacks column positions \(Databend error 1065\)"


def parquet_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.fixture
def csv_dir(user):
    put(user, "@~/d/a.csv", b"1,x\n2,y\n")
    put(user, "@~/d/b.csv", b"3,z\n")
    put(user, "@~/d/c.csv", b"4,w\n")
    return user


# -- FILES => (...) ---------------------------------------------------------------------------


def test_files_reads_exactly_the_named_files(csv_dir):
    rows = query(
        csv_dir,
        "SELECT $1 AS id, $2 AS name, METADATA$FILENAME AS f FROM @~/d/ "
        "(FILE_FORMAT => 'CSV', FILES => ('a.csv', 'c.csv')) ORDER BY id",
    )
    assert rows == [
        {"id": "1", "name": "x", "f": "d/a.csv"},
        {"id": "2", "name": "y", "f": "d/a.csv"},
        {"id": "4", "name": "w", "f": "d/c.csv"},
    ]


def test_files_with_one_name_and_a_location_without_slash(csv_dir):
    # FILES => ('b.csv') is a list of one; a location that is not a folder is joined as one (COPY).
    assert query(csv_dir, "SELECT $1 AS id FROM @~/d (FILE_FORMAT => 'CSV', FILES => ('b.csv'))") == [
        {"id": "3"}
    ]


def test_files_win_over_pattern_as_in_copy(csv_dir):
    rows = query(
        csv_dir,
        "SELECT $1 AS id FROM @~/d/ (FILE_FORMAT => 'CSV', PATTERN => '.*a[.]csv', FILES => ('b.csv'))",
    )
    assert rows == [{"id": "3"}]
    # PATTERN alone still selects by name.
    assert query(csv_dir, "SELECT count($1) AS n FROM @~/d/ (FILE_FORMAT => 'CSV', PATTERN => 'a.*')") == [
        {"n": 2}
    ]


@pytest.mark.parametrize("name", ["../x.csv", "a/../../x.csv", "./a.csv"])
def test_files_refuses_unsafe_paths(csv_dir, name):
    with pytest.raises(dbapi.Error, match=r"Invalid stage path .*segments are not allowed"):
        query(csv_dir, f"SELECT $1 FROM @~/d/ (FILE_FORMAT => 'CSV', FILES => ('a.csv', '{name}'))")


def test_files_missing_file_is_named(csv_dir):
    with pytest.raises(dbapi.Error, match=r"File does not exist: @~/d/nope[.]csv \(FILES\)"):
        query(csv_dir, "SELECT $1 FROM @~/d/ (FILE_FORMAT => 'CSV', FILES => ('a.csv', 'nope.csv'))")


def test_files_must_be_a_list_of_names(csv_dir):
    with pytest.raises(dbapi.Error, match=r"FILES takes a list of file names: FILES => \('a.csv', 'b.csv'\)"):
        query(csv_dir, "SELECT $1 FROM @~/d/ (FILE_FORMAT => 'CSV', FILES => 'a.csv')")


# -- $1 as the VARIANT row -------------------------------------------------------------------

NDJSON = b'{"a": 1, "b": "x", "c": {"d": [10, 20]}}\n{"a": 2, "b": "y", "c": {"d": [30]}}\n'


def test_ndjson_variant_paths(user):
    put(user, "@~/j/r.ndjson", NDJSON)
    rows = query(
        user,
        "SELECT $1:a AS a, CAST($1:b AS VARCHAR) AS b, $1['c'] AS c, $1:c.d[0]::INT AS d0, "
        "$1:missing AS m FROM @~/j/ (FILE_FORMAT => 'NDJSON') ORDER BY a",
    )
    assert [(r["a"], r["b"], json.loads(r["c"]), r["d0"], r["m"]) for r in rows] == [
        ("1", "x", {"d": [10, 20]}, 10, None),
        ("2", "y", {"d": [30]}, 30, None),
    ]


def test_ndjson_dollar_one_is_the_whole_row_and_filters(user):
    put(user, "@~/j2/r.ndjson", NDJSON)
    rows = query(
        user,
        "SELECT t.$1 AS row FROM @~/j2/r.ndjson (FILE_FORMAT => 'NDJSON') t WHERE $1:a::INT = 2",
    )
    assert [json.loads(r["row"]) for r in rows] == [{"a": 2, "b": "y", "c": {"d": [30]}}]
    # Without $1 the columns keep their names.
    assert query(user, "SELECT b FROM @~/j2/ (FILE_FORMAT => 'NDJSON') ORDER BY a") == [
        {"b": "x"},
        {"b": "y"},
    ]


def test_parquet_variant_paths(user):
    put(user, "@~/pq/a.parquet", parquet_bytes(pa.table({"k": [1, 2], "v": ["one", "two"]})))
    rows = query(user, "SELECT $1:k::INT AS k, CAST($1['v'] AS VARCHAR) AS v FROM @~/pq/ ORDER BY k")
    assert rows == [{"k": 1, "v": "one"}, {"k": 2, "v": "two"}]


def test_csv_dollar_one_is_still_the_first_column(csv_dir):
    assert query(csv_dir, "SELECT $1 AS a, $2 AS b FROM @~/d/a.csv (FILE_FORMAT => 'CSV') ORDER BY a") == [
        {"a": "1", "b": "x"},
        {"a": "2", "b": "y"},
    ]


# -- SELECT * on CSV/TSV -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM @~/d/ (FILE_FORMAT => 'CSV')",
        "SELECT *, $1 FROM @~/d/ (FILE_FORMAT => 'CSV')",
        "SELECT t.* FROM @~/d/ (FILE_FORMAT => 'CSV') t",
        "SELECT * FROM @~/d/a.csv (FILE_FORMAT => 'TSV')",
        "FROM @~/d/ (FILE_FORMAT => 'CSV')",
    ],
)
def test_select_star_from_csv_is_refused(csv_dir, sql):
    with pytest.raises(
        dbapi.Error, match=LACKS_POSITIONS + r": name the columns \$1, \$2, \.\.\. instead of \*"
    ):
        query(csv_dir, sql)


def test_select_star_from_csv_stage_format_is_refused_and_parquet_allowed(root_conn, user, unique_table):
    stage = unique_table("st")
    execute(root_conn, f"CREATE STAGE {stage} FILE_FORMAT = (TYPE = CSV)")  # the stage's format applies
    try:
        put(root_conn, f"@{stage}/a.csv", b"1,x\n")
        with pytest.raises(dbapi.Error, match=LACKS_POSITIONS):
            query(root_conn, f"SELECT * FROM @{stage}")
        assert query(root_conn, f"SELECT $2 AS b FROM @{stage}") == [{"b": "x"}]
    finally:
        execute(root_conn, f"DROP STAGE {stage}")
    put(user, "@~/pq2/a.parquet", parquet_bytes(pa.table({"k": [1]})))
    assert query(user, "SELECT * FROM @~/pq2/") == [{"k": 1}]
    # A star over a subquery that names positions is fine.
    put(user, "@~/sub/a.csv", b"5,v\n")
    assert query(user, "SELECT * FROM (SELECT $1 AS a FROM @~/sub/ (FILE_FORMAT => 'CSV'))") == [{"a": "5"}]


# -- the Parquet default ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "suggested"),
    [
        ("x.csv", b"1,x\n2,y\n", "CSV"),
        ("x.ndjson", b'{"a": 1}\n', "NDJSON"),
        ("x.tsv.gz", b"not really gzip but long enough", "TSV"),
        ("tiny", b"1,x", "CSV"),
    ],
)
def test_no_file_format_reads_parquet_and_names_the_option(user, name, data, suggested):
    put(user, f"@~/np/{name}", data)
    with pytest.raises(dbapi.Error) as raised:
        query(user, f"SELECT $1 FROM @~/np/{name}")
    message = str(raised.value)
    assert (
        f"Cannot read staged file np/{name}: Parquet magic bytes not found, it is not a Parquet file"
        in message
    )
    assert f"A query with no FILE_FORMAT reads Parquet: add (FILE_FORMAT => '{suggested}')" in message
    assert "Traceback" not in message


def test_explicit_parquet_format_says_not_parquet_without_the_hint(user):
    put(user, "@~/np2/x.csv", b"1,x\n2,y\n")
    with pytest.raises(
        dbapi.Error, match="np2/x.csv: Parquet magic bytes not found, it is not a Parquet file"
    ) as raised:
        query(user, "SELECT $1 FROM @~/np2/x.csv (FILE_FORMAT => 'PARQUET')")
    assert "A query with no FILE_FORMAT" not in str(raised.value)
