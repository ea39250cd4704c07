"""One named CSV/TSV file format reads the same rows in COPY, in SELECT ... FROM @stage and in INFER_SCHEMA.

Each case stages files, defines a named format, then loads them with ``COPY INTO`` and reads them
back, and compares with ``SELECT $1::T1, ... FROM @stage (FILE_FORMAT => 'fmt')`` cast to the same
column types. Both go through the real server over ADBC.
"""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from tests.e2e.stage_helpers import execute, put, query

# (case id, CREATE FILE FORMAT options, {file name: bytes}, column types, rows both ways must give)
_CASES: list[tuple[str, str, dict[str, bytes], list[str], list[tuple[Any, ...]]]] = [
    (
        "header_pipe_empty_is_null",
        "TYPE = CSV SKIP_HEADER = 1 FIELD_DELIMITER = '|'",
        {"a.csv": b"id|name|price\n1|a|1.5\n2||2.25\n", "b.csv": b"id|name|price\n3|c|\n"},
        ["INTEGER", "VARCHAR", "DOUBLE"],
        [(1, "a", 1.5), (2, None, 2.25), (3, "c", None)],
    ),
    (
        "quote_and_escape",
        "TYPE = CSV QUOTE = '\"' ESCAPE = '\\\\'",
        {"a.csv": b'1,"say \\"hi\\", twice"\n2,"a|b"\n3,plain\n'},
        ["INTEGER", "VARCHAR"],
        [(1, 'say "hi", twice'), (2, "a|b"), (3, "plain")],
    ),
    (
        "trim_space",
        "TYPE = CSV TRIM_SPACE = TRUE",
        {"a.csv": b"  1  ,  x  ,,y\n2,  ,z,  w \n"},
        ["INTEGER", "VARCHAR", "VARCHAR", "VARCHAR"],
        [(1, "x", None, "y"), (2, None, "z", "w")],
    ),
    (
        "null_if",
        "TYPE = CSV NULL_IF = ('NA', '-')",
        {"a.csv": b"1,NA\n2,-\n3,ok\n-,x\n"},
        ["INTEGER", "VARCHAR"],
        [(1, None), (2, None), (3, "ok"), (None, "x")],
    ),
    (
        "empty_field_as_string",
        "TYPE = CSV EMPTY_FIELD_AS = STRING",
        {"a.csv": b"1,\n2,x\n"},
        ["INTEGER", "VARCHAR"],
        [(1, ""), (2, "x")],
    ),
    (
        "tsv_backslash_escapes",
        "TYPE = TSV",
        {"a.tsv": b"1\ta\\tb\n2\tline\\nbreak\n3\t\\N\n4\tback\\\\slash\n"},
        ["INTEGER", "VARCHAR"],
        [(1, "a\tb"), (2, "line\nbreak"), (3, None), (4, "back\\slash")],
    ),
    (
        "gzip_with_header",
        "TYPE = CSV COMPRESSION = GZIP SKIP_HEADER = 1",
        {"a.csv.gz": gzip.compress(b"id,day\n1,2024-01-02\n2,\n")},
        ["INTEGER", "DATE"],
        [(1, "2024-01-02"), (2, None)],
    ),
    (
        "quoted_empty_and_quoted_nulls",
        "TYPE = CSV QUOTED_EMPTY_FIELD_AS = NULL ALLOW_QUOTED_NULLS = TRUE",
        {"a.csv": b'1,"",x\n2,"\\N",""\n3,"q",\n'},
        ["INTEGER", "VARCHAR", "VARCHAR"],
        [(1, None, "x"), (2, None, None), (3, "q", None)],
    ),
    (
        "ragged_rows_allowed",
        "TYPE = CSV ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE",
        {"a.csv": b"1,a\n2\n3,c,extra\n"},
        ["INTEGER", "VARCHAR"],
        [(1, "a"), (2, None), (3, "c")],
    ),
]


def _sorted(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(str(v) if hasattr(v, "isoformat") else v for v in r.values()) for r in rows), key=repr
    )


@pytest.mark.parametrize(
    ("case", "options", "files", "types", "expected"), _CASES, ids=[c[0] for c in _CASES]
)
def test_copy_and_stage_query_read_the_same_rows(user, unique_table, case, options, files, types, expected):
    fmt, table = unique_table("fmt"), unique_table("cc")
    execute(user, f"CREATE FILE FORMAT {fmt} {options}")
    for name, data in files.items():
        put(user, f"@~/{table}/{name}", data)
    columns = [f"c{i + 1}" for i in range(len(types))]
    execute(
        user, f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in zip(columns, types, strict=True))})"
    )

    query(user, f"COPY INTO {table} FROM @~/{table}/ FILE_FORMAT = (FORMAT_NAME = '{fmt}')")
    copied = _sorted(query(user, f"SELECT * FROM {table}"))
    casts = ", ".join(f"${i + 1}::{t} AS {c}" for i, (c, t) in enumerate(zip(columns, types, strict=True)))
    selected = _sorted(query(user, f"SELECT {casts} FROM @~/{table}/ (FILE_FORMAT => '{fmt}')"))

    assert selected == copied
    assert copied == sorted(expected, key=repr)


@pytest.mark.parametrize(
    ("options", "data"),
    [
        ("TYPE = TSV SKIP_HEADER = 1", b"id\tn\tnote\n1\t\\N\ta\\tb\n2\t5\tc\n"),
        ("TYPE = CSV SKIP_HEADER = 1 NULL_IF = ('-')", b"id,n,note\n1,-,a\n2,5,-\n"),
    ],
    ids=["tsv_backslash_n", "csv_null_if"],
)
def test_infer_schema_reads_with_the_named_format(user, unique_table, options, data):
    # TSV's \N and NULL_IF's texts are NULL to INFER_SCHEMA too: the column is a number, as COPY loads it.
    fmt = unique_table("fmt")
    execute(user, f"CREATE FILE FORMAT {fmt} {options}")
    put(user, f"@~/{fmt}/a.txt", data)
    rows = query(user, f"SELECT * FROM INFER_SCHEMA(LOCATION => '@~/{fmt}/', FILE_FORMAT => '{fmt}')")
    columns = [(r["column_name"], r["type"]) for r in rows]
    assert columns == [("id", "BIGINT"), ("n", "BIGINT"), ("note", "VARCHAR")]
