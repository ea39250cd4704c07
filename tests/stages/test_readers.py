"""stages.readers: per-file Arrow streams with Databend COPY semantics, on real files."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from stages.errors import StageError
from stages.on_error import ABORT, CONTINUE, FileStats, OnError, ReadAbort, parse_on_error
from stages.options import unescape_option
from stages.readers import open_file_reader
from stages.storage.local import LocalBackend

AB = pa.schema([("a", pa.int32()), ("b", pa.string())])


def put(backend: LocalBackend, key: str, data: bytes) -> None:
    with backend.open_output(key) as out:
        out.write(data)


def load(
    backend: LocalBackend,
    key: str,
    options: Mapping[str, str],
    target: pa.Schema = AB,
    on_error: OnError = ABORT,
    **kwargs: Any,
) -> tuple[list[dict[str, Any]], FileStats]:
    reader, stats = open_file_reader(backend, key, key, options, target, on_error=on_error, **kwargs)
    table = reader.read_all()
    assert table.schema == target
    return table.to_pylist(), stats


def rows(*pairs: tuple[Any, Any]) -> list[dict[str, Any]]:
    return [{"a": a, "b": b} for a, b in pairs]


# ---------------------------------------------------------------------------------------------
# ON_ERROR parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ABORT", OnError("ABORT", 1)),
        ("abort_4", OnError("ABORT", 4)),
        ("CONTINUE", OnError("CONTINUE", 0)),
        ("SKIP_FILE", OnError("SKIP_FILE", 1)),
        ("SKIP_FILE_3", OnError("SKIP_FILE", 3)),
    ],
)
def test_parse_on_error(text: str, expected: OnError) -> None:
    assert parse_on_error(text) == expected


@pytest.mark.parametrize("text", ["ABORT_0", "SKIP_FILE_0", "CONTINUE_1", "IGNORE", "ABORT_", "", "ABORT_-1"])
def test_parse_on_error_rejects(text: str) -> None:
    with pytest.raises(StageError, match="ON_ERROR must be one of CONTINUE"):
        parse_on_error(text)


def test_unescape_option() -> None:
    assert unescape_option("\\t") == "\t"
    assert unescape_option("\\r\\n") == "\r\n"
    assert unescape_option("\\\\") == "\\"
    assert unescape_option("|") == "|"


# ---------------------------------------------------------------------------------------------
# CSV options (table-driven)

CSV_CASES = [
    ("defaults", {}, b'1,a\n2,\\N\n3,\n4,""\n', rows((1, "a"), (2, None), (3, None), (4, ""))),
    ("skip header", {"SKIP_HEADER": "2"}, b"a,b\nx,y\n1,a\n", rows((1, "a"))),
    ("pipe delimiter", {"FIELD_DELIMITER": "|"}, b"1|a,b\n2|c\n", rows((1, "a,b"), (2, "c"))),
    ("tab delimiter escape", {"FIELD_DELIMITER": "\\t"}, b"1\ta\n", rows((1, "a"))),
    ("crlf records", {"RECORD_DELIMITER": "\\r\\n"}, b"1,a\r\n2,b\r\n", rows((1, "a"), (2, "b"))),
    ("single quote", {"QUOTE": "'"}, b"1,'x,y'\n2,\"q\"\n", rows((1, "x,y"), (2, '"q"'))),
    ("backslash escape", {"ESCAPE": "\\\\"}, b'1,"a\\"b"\n', rows((1, 'a"b'))),
    ("doubled quote", {}, b'1,"a""b"\n', rows((1, 'a"b'))),
    ("null display", {"NULL_DISPLAY": "NULL"}, b"1,NULL\nNULL,\\N\n", rows((1, None), (None, "\\N"))),
    ("quoted null is a string", {}, b'1,"\\N"\n', rows((1, "\\N"))),
    ("empty as string", {"EMPTY_FIELD_AS": "STRING"}, b"1,\n", rows((1, ""))),
    ("empty as field default", {"EMPTY_FIELD_AS": "FIELD_DEFAULT"}, b"1,\n", rows((1, None))),
    ("trim space", {"TRIM_SPACE": "TRUE"}, b" 1 , a \n2,  \n", rows((1, "a"), (2, None))),
    ("newline in quotes", {}, b'1,"x\ny"\n2,z\n', rows((1, "x\ny"), (2, "z"))),
    ("blank lines skipped", {}, b"1,a\n\n2,b\n", rows((1, "a"), (2, "b"))),
    ("no trailing newline", {}, b"1,a\n2,b", rows((1, "a"), (2, "b"))),
]


@pytest.mark.parametrize(
    ("options", "data", "expected"), [c[1:] for c in CSV_CASES], ids=[c[0] for c in CSV_CASES]
)
def test_csv_options(
    local_backend: LocalBackend, options: dict[str, str], data: bytes, expected: list[dict[str, Any]]
) -> None:
    put(local_backend, "s/f.csv", data)
    got, stats = load(local_backend, "s/f.csv", {"TYPE": "CSV", **options})
    assert got == expected
    assert stats.rows_loaded == len(expected)
    assert stats.errors_seen == 0


def test_csv_typed_columns(local_backend: LocalBackend) -> None:
    target = pa.schema(
        [
            ("i", pa.int64()),
            ("f", pa.float64()),
            ("ok", pa.bool_()),
            ("d", pa.date32()),
            ("ts", pa.timestamp("us")),
            ("t", pa.time64("us")),
            ("m", pa.decimal128(10, 2)),
        ]
    )
    put(
        local_backend,
        "s/t.csv",
        b"7,1.5,true,2024-02-03,2024-02-03 04:05:06.5,12:30:00,3.25\n8,NaN,FALSE,,,,\n",
    )
    got, _ = load(local_backend, "s/t.csv", {"TYPE": "CSV"}, target)
    assert got[0] == {
        "i": 7,
        "f": 1.5,
        "ok": True,
        "d": date(2024, 2, 3),
        "ts": datetime(2024, 2, 3, 4, 5, 6, 500000),
        "t": time(12, 30),
        "m": Decimal("3.25"),
    }
    assert got[1]["ok"] is False and got[1]["f"] != got[1]["f"]  # NaN
    assert got[1]["d"] is None and got[1]["m"] is None


@pytest.mark.parametrize("trim", ["FALSE", "TRUE"])
def test_csv_nan_display(local_backend: LocalBackend, trim: str) -> None:
    put(local_backend, "s/n.csv", b"1,nan_v\n2,2.5\n")
    target = pa.schema([("a", pa.int32()), ("f", pa.float64())])
    got, stats = load(
        local_backend, "s/n.csv", {"TYPE": "CSV", "NAN_DISPLAY": "nan_v", "TRIM_SPACE": trim}, target
    )
    assert stats.errors_seen == 0
    assert got[0]["f"] != got[0]["f"] and got[1]["f"] == 2.5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"FIELD_DELIMITER": "||"}, "FIELD_DELIMITER"),
        ({"RECORD_DELIMITER": "||"}, "RECORD_DELIMITER"),
        ({"QUOTE": "ab"}, "QUOTE"),
        ({"SKIP_HEADER": "x"}, "SKIP_HEADER"),
        ({"EMPTY_FIELD_AS": "ZERO"}, "EMPTY_FIELD_AS"),
        ({"ERROR_ON_COLUMN_COUNT_MISMATCH": "maybe"}, "ERROR_ON_COLUMN_COUNT_MISMATCH"),
        ({"COMPRESSION": "XZ"}, "COMPRESSION"),
    ],
)
def test_csv_bad_options_fail_before_reading(
    local_backend: LocalBackend, options: dict[str, str], message: str
) -> None:
    with pytest.raises(StageError, match=message):
        open_file_reader(local_backend, "s/missing.csv", "x", {"TYPE": "CSV", **options}, AB, on_error=ABORT)


# ---------------------------------------------------------------------------------------------
# TSV


def test_tsv_escapes(local_backend: LocalBackend) -> None:
    data = b'1\ta\\tb\n2\t\\N\n3\tx\\\\y\n4\tl1\\nl2\n5\t\\\\N\n6\t"q"\n'
    put(local_backend, "s/f.tsv", data)
    got, stats = load(local_backend, "s/f.tsv", {"TYPE": "TSV"})
    assert got == rows((1, "a\tb"), (2, None), (3, "x\\y"), (4, "l1\nl2"), (5, "\\N"), (6, '"q"'))
    assert stats.errors_seen == 0


def test_text_is_tsv_and_counts_lines(local_backend: LocalBackend) -> None:
    put(local_backend, "s/f.txt", b"1\ta\nx\tb\n3\t\n")
    got, stats = load(local_backend, "s/f.txt", {"TYPE": "TEXT"}, on_error=CONTINUE)
    assert got == rows((1, "a"), (3, None))
    assert (stats.errors_seen, stats.first_error_line) == (1, 2)


# ---------------------------------------------------------------------------------------------
# NDJSON


def ndjson(*records: Any) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


NDJSON_CASES = [
    ("by name", {}, "CASE_INSENSITIVE", ndjson({"b": "x", "a": 1, "z": 0}), rows((1, "x")), 0),
    ("case insensitive", {}, "CASE_INSENSITIVE", ndjson({"A": 1, "B": "x"}), rows((1, "x")), 0),
    ("case sensitive misses", {}, "CASE_SENSITIVE", ndjson({"A": 1, "b": "x"}), [], 1),
    ("missing errors", {}, "CASE_INSENSITIVE", ndjson({"a": 1}, {"a": 2, "b": "y"}), rows((2, "y")), 1),
    (
        "missing as null",
        {"MISSING_FIELD_AS": "NULL"},
        "CASE_INSENSITIVE",
        ndjson({"a": 1}),
        rows((1, None)),
        0,
    ),
    (
        "missing as default",
        {"MISSING_FIELD_AS": "FIELD_DEFAULT"},
        "CASE_INSENSITIVE",
        ndjson({"b": "q"}),
        rows((None, "q")),
        0,
    ),
    (
        "explicit null",
        {"NULL_FIELD_AS": "NULL"},
        "CASE_INSENSITIVE",
        ndjson({"a": None, "b": None}),
        rows((None, None)),
        0,
    ),
    (
        "string to int, object to string",
        {},
        "CASE_INSENSITIVE",
        ndjson({"a": "5", "b": {"k": 1}}),
        rows((5, '{"k": 1}')),
        0,
    ),
    ("bad value", {}, "CASE_INSENSITIVE", ndjson({"a": "x", "b": "1"}, {"a": 2, "b": 3}), rows((2, "3")), 1),
    ("invalid json", {}, "CASE_INSENSITIVE", b'{"a": 1, "b": "x"}\n{oops\n[1]\n', rows((1, "x")), 2),
]


@pytest.mark.parametrize(
    ("options", "match", "data", "expected", "errors"),
    [c[1:] for c in NDJSON_CASES],
    ids=[c[0] for c in NDJSON_CASES],
)
def test_ndjson(
    local_backend: LocalBackend,
    options: dict[str, str],
    match: str,
    data: bytes,
    expected: list[dict[str, Any]],
    errors: int,
) -> None:
    put(local_backend, "s/f.ndjson", data)
    got, stats = load(
        local_backend, "s/f.ndjson", {"TYPE": "NDJSON", **options}, on_error=CONTINUE, column_match=match
    )
    assert got == expected
    assert stats.errors_seen == errors


def test_ndjson_error_line_counts_blank_lines(local_backend: LocalBackend) -> None:
    put(local_backend, "s/f.ndjson", b'{"a": 1, "b": "x"}\n\n{"a": 2}\n')
    with pytest.raises(ReadAbort, match=r"at file 's/f.ndjson', line 3: Missing field 'b'"):
        load(local_backend, "s/f.ndjson", {"TYPE": "NDJSON"})


def test_ndjson_typed_values(local_backend: LocalBackend) -> None:
    target = pa.schema(
        [
            ("i", pa.int64()),
            ("f", pa.float64()),
            ("ok", pa.bool_()),
            ("s", pa.string()),
            ("d", pa.date32()),
            ("ts", pa.timestamp("us")),
            ("t", pa.time64("us")),
            ("m", pa.decimal128(10, 2)),
        ]
    )
    record = {
        "i": 7,
        "f": 2,
        "ok": True,
        "s": "x",
        "d": "2024-02-29",
        "ts": "2024-02-29 10:30:00",
        "t": "10:30:00",
        "m": "12.34",
    }
    put(local_backend, "s/f.ndjson", ndjson(record, {**record, "i": -1, "s": "é"}))
    got, stats = load(local_backend, "s/f.ndjson", {"TYPE": "NDJSON"}, target)
    expected = {
        "i": 7,
        "f": 2.0,
        "ok": True,
        "s": "x",
        "d": date(2024, 2, 29),
        "ts": datetime(2024, 2, 29, 10, 30),
        "t": time(10, 30),
        "m": Decimal("12.34"),
    }
    assert got == [expected, {**expected, "i": -1, "s": "é"}]
    assert stats.rows_loaded == 2 and stats.errors_seen == 0


def test_ndjson_non_string_values_in_a_string_column_keep_their_json(local_backend: LocalBackend) -> None:
    put(local_backend, "s/f.ndjson", ndjson({"a": 1, "b": 5}, {"a": 2, "b": {"k": [1]}}))
    got, _ = load(local_backend, "s/f.ndjson", {"TYPE": "NDJSON"})
    assert got == rows((1, "5"), (2, '{"k": [1]}'))


def test_ndjson_two_objects_on_one_line_is_an_error(local_backend: LocalBackend) -> None:
    put(local_backend, "s/f.ndjson", b'{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}{"a": 3, "b": "z"}\n')
    got, stats = load(local_backend, "s/f.ndjson", {"TYPE": "NDJSON"}, on_error=CONTINUE)
    assert got == rows((1, "x"))
    assert stats.errors_seen == 1 and stats.first_error_line == 2
    assert stats.first_error is not None and "Invalid JSON" in stats.first_error


def test_ndjson_large_file_error_line_across_blocks(local_backend: LocalBackend) -> None:
    # Over 8 MiB, so it is read in several blocks; one bad record deep in a later block.
    count, bad_line = 250_000, 212_345
    lines = [json.dumps({"a": i, "b": "v" * 20}) for i in range(count)]
    lines[bad_line - 1] = json.dumps({"a": "not a number", "b": "v"})
    put(local_backend, "s/big.ndjson", ("\n".join(lines) + "\n").encode())
    got, stats = load(local_backend, "s/big.ndjson", {"TYPE": "NDJSON"}, on_error=CONTINUE)
    assert len(got) == count - 1
    assert got[0] == {"a": 0, "b": "v" * 20} and got[-1] == {"a": count - 1, "b": "v" * 20}
    assert sum(r["a"] for r in got) == sum(range(count)) - (bad_line - 1)
    assert stats.rows_loaded == count - 1
    assert stats.errors_seen == 1 and stats.first_error_line == bad_line
    with pytest.raises(ReadAbort, match=f"line {bad_line}: Invalid value for column 0"):
        load(local_backend, "s/big.ndjson", {"TYPE": "NDJSON"})


def test_ndjson_gzip_without_trailing_newline(local_backend: LocalBackend) -> None:
    put(local_backend, "s/f.ndjson.gz", gzip.compress(b'{"a": 1, "b": "x"}\n\n{"a": 2, "b": "y"}'))
    got, stats = load(local_backend, "s/f.ndjson.gz", {"TYPE": "NDJSON", "COMPRESSION": "AUTO"})
    assert got == rows((1, "x"), (2, "y"))
    assert stats.rows_loaded == 2


def test_ndjson_null_if_on_both_paths(local_backend: LocalBackend) -> None:
    # Fast path: plain strings. Careful path: "NULL" where a number belongs (pyarrow refuses it).
    options = {"TYPE": "NDJSON", "NULL_IF": "('NULL', '')"}
    put(local_backend, "s/fast.ndjson", ndjson({"a": 1, "b": "NULL"}, {"a": 2, "b": ""}, {"a": 3, "b": "x"}))
    got, stats = load(local_backend, "s/fast.ndjson", options)
    assert got == rows((1, None), (2, None), (3, "x")) and stats.errors_seen == 0
    put(local_backend, "s/careful.ndjson", ndjson({"a": "NULL", "b": "NULL"}, {"a": 2, "b": 5}))
    got, stats = load(local_backend, "s/careful.ndjson", options)
    assert got == rows((None, None), (2, "5")) and stats.errors_seen == 0


def test_csv_null_if_on_both_paths(local_backend: LocalBackend) -> None:
    options = {"TYPE": "CSV", "NULL_IF": "('-', 'none')"}
    put(local_backend, "s/fast.csv", b"1,-\n-,none\n3,x\n")
    got, _ = load(local_backend, "s/fast.csv", options)
    assert got == rows((1, None), (None, None), (3, "x"))
    # A bad value sends the file to the careful path, which applies the same list.
    put(local_backend, "s/careful.csv", b"1,-\nbad,y\n-,none\n")
    got, stats = load(local_backend, "s/careful.csv", options, on_error=CONTINUE)
    assert got == rows((1, None), (None, None)) and stats.errors_seen == 1 and stats.first_error_line == 2


@pytest.mark.parametrize(("key", "kind"), [("s/t.csv", "CSV"), ("s/t.ndjson", "NDJSON")])
def test_timestamps_with_zone_offsets(local_backend: LocalBackend, key: str, kind: str) -> None:
    # As DuckDB and Snowflake: TIMESTAMP keeps the written wall time and drops the offset;
    # TIMESTAMPTZ reads a value without an offset in the column's zone.
    texts = ["2024-01-02T11:00:00Z", "2024-01-02 11:00:00+02:00", "2024-01-02 11:00:00.5", "2024-01-03"]
    if kind == "CSV":
        data = "".join(f"{t},{t.replace('Z', '').split('+')[0]}\n" for t in texts).encode()
    else:
        data = ndjson(*({"a": t, "b": t.replace("Z", "").split("+")[0]} for t in texts))
    put(local_backend, key, data)
    target = pa.schema([("a", pa.timestamp("us")), ("b", pa.timestamp("us", "UTC"))])
    got, stats = load(local_backend, key, {"TYPE": kind}, target)
    assert stats.errors_seen == 0
    assert [r["a"] for r in got] == [
        datetime(2024, 1, 2, 11),
        datetime(2024, 1, 2, 11),
        datetime(2024, 1, 2, 11, 0, 0, 500000),
        datetime(2024, 1, 3),
    ]
    assert [r["b"].replace(tzinfo=None) for r in got] == [r["a"] for r in got]
    assert all(r["b"].utcoffset().total_seconds() == 0 for r in got)


def test_null_if_must_be_a_list(local_backend: LocalBackend) -> None:
    put(local_backend, "s/f.csv", b"1,x\n")
    with pytest.raises(StageError, match=r"NULL_IF must be a list of strings in parentheses.*got x"):
        load(local_backend, "s/f.csv", {"TYPE": "CSV", "NULL_IF": "x"})


# ---------------------------------------------------------------------------------------------
# Parquet


def put_parquet(backend: LocalBackend, key: str, table: pa.Table) -> None:
    with backend.open_output(key) as out:
        pq.write_table(table, out)


def test_parquet_null_if_applies_to_string_columns(local_backend: LocalBackend) -> None:
    data = pa.table({"a": pa.array(["1", "NULL"], pa.large_string()), "b": ["NULL", "y"]})
    put_parquet(local_backend, "s/n.parquet", data)
    got, stats = load(local_backend, "s/n.parquet", {"TYPE": "PARQUET", "NULL_IF": "('NULL')"})
    assert got == rows((1, None), (None, "y")) and stats.errors_seen == 0


def test_parquet_by_name_and_cast(local_backend: LocalBackend) -> None:
    put_parquet(local_backend, "s/p.parquet", pa.table({"B": ["x", "y"], "extra": [0, 0], "A": [1, 2]}))
    got, stats = load(local_backend, "s/p.parquet", {"TYPE": "PARQUET"})
    assert got == rows((1, "x"), (2, "y"))
    assert stats.rows_loaded == 2


def test_parquet_case_sensitive_missing_column(local_backend: LocalBackend) -> None:
    put_parquet(local_backend, "s/p.parquet", pa.table({"A": [1], "b": ["x"]}))
    with pytest.raises(ReadAbort, match="Missing column 'a'"):
        load(local_backend, "s/p.parquet", {"TYPE": "PARQUET"}, column_match="CASE_SENSITIVE")
    got, stats = load(
        local_backend, "s/p.parquet", {"TYPE": "PARQUET"}, on_error=CONTINUE, column_match="CASE_SENSITIVE"
    )
    assert got == [] and stats.errors_seen == 1 and stats.first_error_line is None


@pytest.mark.parametrize("missing", ["NULL", "FIELD_DEFAULT"])
def test_parquet_missing_field_as_null(local_backend: LocalBackend, missing: str) -> None:
    put_parquet(local_backend, "s/p.parquet", pa.table({"a": [1, 2]}))
    got, _ = load(local_backend, "s/p.parquet", {"TYPE": "PARQUET", "MISSING_FIELD_AS": missing})
    assert got == rows((1, None), (2, None))


def test_parquet_ambiguous_and_bad_mode(local_backend: LocalBackend) -> None:
    put_parquet(local_backend, "s/p.parquet", pa.table({"B": ["x"], "b2": ["y"], "a": [1]}))
    got, _ = load(local_backend, "s/p.parquet", {"TYPE": "PARQUET"}, column_match="CASE_INSENSITIVE")
    assert got == rows((1, "x"))
    with pytest.raises(StageError, match="ColumnMatchMode"):
        open_file_reader(local_backend, "s/p.parquet", "x", {}, AB, on_error=ABORT, column_match="POSITION")


def test_parquet_row_errors_report_row_numbers(local_backend: LocalBackend) -> None:
    put_parquet(
        local_backend, "s/p.parquet", pa.table({"a": ["1", "x", "3", "y"], "b": ["p", "q", "r", "s"]})
    )
    got, stats = load(local_backend, "s/p.parquet", {}, on_error=CONTINUE, batch_rows=3)
    assert got == rows((1, "p"), (3, "r"))
    assert (stats.errors_seen, stats.first_error_line) == (2, 2)
    assert "Invalid value 'x' for column 0 (a int32)" in (stats.first_error or "")


def test_parquet_corrupt_file(local_backend: LocalBackend) -> None:
    put(local_backend, "s/bad.parquet", b"not parquet at all")
    with pytest.raises(ReadAbort, match="s/bad.parquet"):
        load(local_backend, "s/bad.parquet", {})


# ---------------------------------------------------------------------------------------------
# Compression and empty files

PLAIN = b"1,a\n2,b\n"


def _zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize(
    ("key", "compression", "data"),
    [
        ("s/f.csv.gz", "AUTO", gzip.compress(PLAIN)),
        ("s/f.csv.zst", "AUTO", _zstd(PLAIN)),
        ("s/f.csv.gz", "GZIP", gzip.compress(PLAIN)),
        ("s/f.dat", "GZIP", gzip.compress(PLAIN)),
        ("s/f.dat", "ZSTD", _zstd(PLAIN)),
        ("s/f.csv.gz", "NONE", PLAIN),
        ("s/f.csv", "AUTO", PLAIN),
    ],
)
def test_compression(local_backend: LocalBackend, key: str, compression: str, data: bytes) -> None:
    put(local_backend, key, data)
    got, _ = load(local_backend, key, {"TYPE": "CSV", "COMPRESSION": compression})
    assert got == rows((1, "a"), (2, "b"))


@pytest.mark.parametrize(
    ("key", "options", "data"),
    [
        ("s/e.csv", {"TYPE": "CSV"}, b""),
        ("s/e.csv", {"TYPE": "CSV", "SKIP_HEADER": "1"}, b"a,b\n"),
        ("s/e.csv.gz", {"TYPE": "CSV"}, gzip.compress(b"")),
        ("s/e.tsv", {"TYPE": "TSV"}, b""),
        ("s/e.ndjson", {"TYPE": "NDJSON"}, b""),
    ],
)
def test_empty_files_load_nothing(
    local_backend: LocalBackend, key: str, options: dict[str, str], data: bytes
) -> None:
    put(local_backend, key, data)
    got, stats = load(local_backend, key, options)
    assert got == [] and stats == FileStats()


# ---------------------------------------------------------------------------------------------
# ON_ERROR (Databend csv_on_error.test: bad values on lines 2, 4, 5, 6 of 7)

ON_ERROR_CSV = b"1,a\nx,b\n3,c\ny,d\nz,e\nw,f\n7,g\n"
GOOD = rows((1, "a"), (3, "c"), (7, "g"))


@pytest.mark.parametrize(
    ("mode", "expected", "errors"),
    [
        ("CONTINUE", GOOD, 4),
        ("ABORT_5", GOOD, 4),
        ("SKIP_FILE", [], 1),
        ("SKIP_FILE_4", [], 4),
        ("SKIP_FILE_5", GOOD, 4),
    ],
)
def test_on_error_loads(
    local_backend: LocalBackend, mode: str, expected: list[dict[str, Any]], errors: int
) -> None:
    put(local_backend, "csv/wrong_sample.csv", ON_ERROR_CSV)
    got, stats = load(local_backend, "csv/wrong_sample.csv", {"TYPE": "CSV"}, on_error=parse_on_error(mode))
    assert got == expected
    assert (stats.rows_loaded, stats.errors_seen, stats.first_error_line) == (len(expected), errors, 2)
    assert stats.first_error is not None and "'x'" in stats.first_error


@pytest.mark.parametrize(("mode", "count"), [("ABORT", 1), ("ABORT_4", 4)])
def test_on_error_aborts(local_backend: LocalBackend, mode: str, count: int) -> None:
    put(local_backend, "csv/wrong_sample.csv", ON_ERROR_CSV)
    reader, stats = open_file_reader(
        local_backend,
        "csv/wrong_sample.csv",
        "csv/wrong_sample.csv",
        {"TYPE": "CSV"},
        AB,
        on_error=parse_on_error(mode),
    )
    with pytest.raises(
        ReadAbort, match=rf"abort after {count} errors! .* at file 'csv/wrong_sample.csv', line 2"
    ):
        reader.read_all()
    assert stats.abort is not None and stats.errors_seen == count


def test_error_lines_count_header_and_embedded_newlines(local_backend: LocalBackend) -> None:
    put(local_backend, "s/f.csv", b'a,b\n1,"x\ny\nz"\nbad,q\n')
    got, stats = load(local_backend, "s/f.csv", {"TYPE": "CSV", "SKIP_HEADER": "1"}, on_error=CONTINUE)
    assert got == rows((1, "x\ny\nz"))
    assert stats.first_error_line == 5


def test_abort_inside_duckdb_keeps_the_original_error(local_backend: LocalBackend) -> None:
    duckdb = pytest.importorskip("duckdb")
    put(local_backend, "s/f.csv", b"1,a\nx,b\n")
    reader, stats = open_file_reader(local_backend, "s/f.csv", "s/f.csv", {"TYPE": "CSV"}, AB, on_error=ABORT)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a INTEGER, b VARCHAR)")
    con.register("reg", reader)
    with pytest.raises(duckdb.Error, match="abort after 1 errors"):
        con.execute("INSERT INTO t SELECT * FROM reg")
    assert isinstance(stats.abort, ReadAbort)


def test_error_after_fast_batches_resumes_without_duplicates(local_backend: LocalBackend) -> None:
    """A bad value past the first Arrow blocks: rows already streamed are not repeated."""
    count = 400_000
    body = b"".join(b"%d,name_%d\n" % (i, i) for i in range(count))
    put(local_backend, "s/big.csv", b"h,h\n" + body + b"oops,last\n")
    reader, stats = open_file_reader(
        local_backend,
        "s/big.csv",
        "s/big.csv",
        {"TYPE": "CSV", "SKIP_HEADER": "1"},
        AB,
        on_error=CONTINUE,
        batch_rows=50_000,
    )
    table = reader.read_all()
    assert table.num_rows == count == stats.rows_loaded
    assert pc.sum(table["a"]).as_py() == count * (count - 1) // 2
    assert (stats.errors_seen, stats.first_error_line) == (1, count + 2)


# ---------------------------------------------------------------------------------------------
# Column count mismatch


def test_column_count_mismatch_is_an_error(local_backend: LocalBackend) -> None:
    put(local_backend, "s/f.csv", b"1,a\n2\n3,c,extra\n4,d\n")
    got, stats = load(local_backend, "s/f.csv", {"TYPE": "CSV"}, on_error=CONTINUE)
    assert got == rows((1, "a"), (4, "d"))
    assert (stats.errors_seen, stats.first_error_line) == (2, 2)
    assert "Number of columns in file (1)" in (stats.first_error or "")


def test_column_count_mismatch_allowed(local_backend: LocalBackend) -> None:
    put(local_backend, "s/f.csv", b"1,a\n2\n3,c,extra\n")
    got, stats = load(local_backend, "s/f.csv", {"TYPE": "CSV", "ERROR_ON_COLUMN_COUNT_MISMATCH": "false"})
    assert got == rows((1, "a"), (2, None), (3, "c"))
    assert stats.errors_seen == 0


# ---------------------------------------------------------------------------------------------
# Memory: a 200 MB file streams with bounded memory

_RSS_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import pyarrow as pa
    from stages.on_error import ABORT
    from stages.readers import open_file_reader
    from stages.storage.local import LocalBackend

    backend = LocalBackend(sys.argv[1])
    target = pa.schema([("id", pa.int64()), ("name", pa.string()), ("amount", pa.float64())])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reader, stats = open_file_reader(backend, "big.csv", "big.csv", {"TYPE": "CSV"}, target, on_error=ABORT)
    rows = sum(batch.num_rows for batch in reader)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(rows, stats.rows_loaded, (after - before) * 1024)
    """
)


@pytest.mark.slow
def test_large_csv_streams_with_bounded_memory(tmp_path: Path) -> None:
    line = b"123456789,some_reasonably_long_name_value_for_padding,12345.678\n"
    repeats = (200 << 20) // len(line) + 1
    chunk = line * 10_000
    with open(tmp_path / "big.csv", "wb") as out:
        for _ in range(repeats // 10_000):
            out.write(chunk)
        out.write(line * (repeats % 10_000))
    size = (tmp_path / "big.csv").stat().st_size
    assert size >= 200 << 20
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _RSS_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
        timeout=300,
    )
    loaded, counted, growth = (int(x) for x in done.stdout.split())
    assert loaded == counted == repeats
    assert growth < size // 3, f"RSS grew by {growth >> 20} MiB for a {size >> 20} MiB file"


def test_csv_parses_on_the_caller_alone_when_told(tmp_path: Path) -> None:
    """A server held to one thread (--threads 1) reads CSV without pyarrow's pool beside it."""
    from stages.csv_dialect import csv_arrow_options, csv_dialect

    dialect = csv_dialect({"TYPE": "CSV"})
    assert csv_arrow_options(dialect, ["a", "b"], list(AB.types))[0].use_threads is True
    assert csv_arrow_options(dialect, ["a", "b"], list(AB.types), use_threads=False)[0].use_threads is False
    assert csv_arrow_options(dialect, None, use_threads=False)[0].use_threads is False
    backend = LocalBackend(tmp_path)
    put(backend, "f.csv", b"".join(b"%d,row %d\n" % (i, i) for i in range(5000)))
    one, _ = load(backend, "f.csv", {"TYPE": "CSV"}, use_threads=False)
    pooled, _ = load(backend, "f.csv", {"TYPE": "CSV"})
    assert one == pooled == [{"a": i, "b": f"row {i}"} for i in range(5000)]


def test_ndjson_parses_on_the_caller_alone_when_told(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    put(backend, "f.ndjson", b"".join(b'{"a": %d, "b": "row %d"}\n' % (i, i) for i in range(5000)))
    one, _ = load(backend, "f.ndjson", {"TYPE": "NDJSON"}, use_threads=False)
    pooled, _ = load(backend, "f.ndjson", {"TYPE": "NDJSON"})
    assert one == pooled == [{"a": i, "b": f"row {i}"} for i in range(5000)]
