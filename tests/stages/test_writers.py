"""stages.writers: COPY INTO <location> naming, splitting, modes, formats and round trips."""

from __future__ import annotations

import gzip
from typing import Any

import pyarrow as pa
import pytest

from stages.errors import StageError
from stages.on_error import CONTINUE
from stages.readers import open_file_reader
from stages.storage.local import LocalBackend
from stages.writers import UnloadedFile, unload, unload_extension

PREFIX = "stage/internal/s/"
SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.string())])
TABLE = pa.table({"a": [1, 2, None, 4], "b": ["x", 'q"u,o\nte', None, "tab\there \\N"]}, schema=SCHEMA)


def run(
    backend: LocalBackend,
    path: str = "",
    options: dict[str, str] | None = None,
    table: pa.Table = TABLE,
    **modes: Any,
) -> list[UnloadedFile]:
    settings: dict[str, Any] = {
        "query_id": "q1",
        "single": False,
        "max_file_size": 64 << 20,
        "overwrite": False,
        "use_raw_path": False,
        "include_query_id": True,
    }
    settings.update(modes)
    options = {"TYPE": "CSV"} if options is None else options
    return unload(table.to_reader(), backend, PREFIX, path, options, **settings)


def names(files: list[UnloadedFile]) -> list[str]:
    return [f.name for f in files]


def read_back(backend: LocalBackend, name: str, options: dict[str, str]) -> list[dict[str, Any]]:
    reader, stats = open_file_reader(backend, PREFIX + name, name, options, SCHEMA, on_error=CONTINUE)
    result = reader.read_all().to_pylist()
    assert stats.errors_seen == 0, stats.first_error
    return result


@pytest.mark.parametrize(
    ("path", "modes", "expected"),
    [
        ("", {}, "data_q1_0000_00000000.csv"),
        ("/", {}, "data_q1_0000_00000000.csv"),
        ("a", {}, "a/data_q1_0000_00000000.csv"),
        ("a/", {}, "a/data_q1_0000_00000000.csv"),
        ("a/b/", {}, "a/b/data_q1_0000_00000000.csv"),
        ("a/data_", {}, "a/data_q1_0000_00000000.csv"),
        ("a/out_", {}, "a/out_q1_0000_00000000.csv"),
        ("a", {"include_query_id": False}, "a/data_0000_00000000.csv"),
        ("a/x.csv", {"use_raw_path": True, "single": True}, "a/x.csv"),
    ],
)
def test_naming(local_backend: LocalBackend, path: str, modes: dict[str, Any], expected: str) -> None:
    files = run(local_backend, path, **modes)
    assert names(files) == [expected]
    assert local_backend.stat(PREFIX + expected).size == files[0].size
    assert files[0].rows == 4


@pytest.mark.parametrize(
    ("options", "extension"),
    [
        ({"TYPE": "CSV"}, ".csv"),
        ({"TYPE": "CSV", "COMPRESSION": "GZIP"}, ".csv.gz"),
        ({"TYPE": "CSV", "COMPRESSION": "ZSTD"}, ".csv.zst"),
        ({"TYPE": "TSV"}, ".txt"),
        ({"TYPE": "TEXT", "COMPRESSION": "GZIP"}, ".txt.gz"),
        ({"TYPE": "NDJSON"}, ".ndjson"),
        ({"TYPE": "NDJSON", "COMPRESSION": "ZSTD"}, ".ndjson.zst"),
        ({"TYPE": "PARQUET"}, ".parquet"),
        ({"TYPE": "PARQUET", "COMPRESSION": "SNAPPY"}, ".parquet"),
        ({}, ".parquet"),
    ],
)
def test_extensions_and_round_trip(
    local_backend: LocalBackend, options: dict[str, str], extension: str
) -> None:
    assert unload_extension(options) == extension
    files = run(local_backend, "out/", options)
    assert names(files) == [f"out/data_q1_0000_00000000{extension}"]
    assert read_back(local_backend, files[0].name, options) == TABLE.to_pylist()


def test_gzip_output_is_really_compressed(local_backend: LocalBackend, storage_root: Any) -> None:
    files = run(local_backend, "", {"TYPE": "CSV", "COMPRESSION": "GZIP"})
    raw = (storage_root / PREFIX / files[0].name).read_bytes()
    assert gzip.decompress(raw).startswith(b'"1",')


def test_csv_text_options(local_backend: LocalBackend, storage_root: Any) -> None:
    options = {
        "TYPE": "CSV",
        "OUTPUT_HEADER": "true",
        "FIELD_DELIMITER": "|",
        "RECORD_DELIMITER": "\\r\\n",
        "NULL_DISPLAY": "NULL",
    }
    files = run(local_backend, "", options, table=TABLE.slice(0, 3))
    text = (storage_root / PREFIX / files[0].name).read_bytes()
    assert text == b'"a"|"b"\r\n"1"|"x"\r\n"2"|"q""u,o\nte"\r\nNULL|NULL\r\n'
    assert (
        read_back(local_backend, files[0].name, {**options, "SKIP_HEADER": "1"})
        == TABLE.slice(0, 3).to_pylist()
    )


def test_default_csv_has_no_header_and_backslash_n_nulls(
    local_backend: LocalBackend, storage_root: Any
) -> None:
    files = run(local_backend, "", {"TYPE": "CSV"}, table=TABLE.slice(2, 1))
    assert (storage_root / PREFIX / files[0].name).read_bytes() == b"\\N,\\N\n"


def test_csv_quote_styles(local_backend: LocalBackend, storage_root: Any) -> None:
    table = pa.table(
        {"a": [1, None, 3, 4], "b": ["plain", None, "", 'q"u,o\nte'], "c": ["\\N", "x y", None, "z"]}
    )
    not_null = run(local_backend, "nn/", {"TYPE": "CSV", "OUTPUT_HEADER": "TRUE"}, table=table)
    assert (storage_root / PREFIX / not_null[0].name).read_bytes() == (
        b'"a","b","c"\n"1","plain","\\N"\n\\N,\\N,"x y"\n"3","",\\N\n"4","q""u,o\nte","z"\n'
    )
    minimal = run(
        local_backend,
        "min/",
        {"TYPE": "CSV", "QUOTE_STYLE": "QUOTE_MINIMAL", "OUTPUT_HEADER": "TRUE"},
        table=table,
    )
    # Quoted only where needed; '' and the text \N are quoted so that they do not load as NULL.
    assert (storage_root / PREFIX / minimal[0].name).read_bytes() == (
        b'a,b,c\n1,plain,"\\N"\n\\N,\\N,x y\n3,"",\\N\n4,"q""u,o\nte",z\n'
    )
    schema = pa.schema([("a", pa.int64()), ("b", pa.string()), ("c", pa.string())])
    for f in (not_null[0], minimal[0]):
        reader, stats = open_file_reader(
            local_backend,
            PREFIX + f.name,
            f.name,
            {"TYPE": "CSV", "SKIP_HEADER": "1"},
            schema,
            on_error=CONTINUE,
        )
        assert reader.read_all().to_pylist() == table.to_pylist() and stats.errors_seen == 0


def test_tsv_output_escapes(local_backend: LocalBackend, storage_root: Any) -> None:
    files = run(local_backend, "", {"TYPE": "TSV", "OUTPUT_HEADER": "TRUE"})
    text = (storage_root / PREFIX / files[0].name).read_bytes()
    assert text == b'a\tb\n1\tx\n2\tq"u,o\\nte\n\\N\t\\N\n4\ttab\\there \\\\N\n'


def test_max_file_size_splits_at_batch_boundaries(local_backend: LocalBackend) -> None:
    table = pa.concat_tables([TABLE] * 5).combine_chunks()
    reader = pa.RecordBatchReader.from_batches(SCHEMA, table.to_batches(max_chunksize=4))
    files = unload(
        reader,
        local_backend,
        PREFIX,
        "p/",
        {"TYPE": "PARQUET"},  # text formats cut batches too (issue 15): Parquet rolls at boundaries
        query_id="q1",
        single=False,
        max_file_size=1,
        overwrite=False,
        use_raw_path=False,
        include_query_id=True,
    )
    assert names(files) == [f"p/data_q1_0000_{i:08d}.parquet" for i in range(5)]
    assert [f.rows for f in files] == [4] * 5


def test_max_file_size_keeps_small_batches_together(local_backend: LocalBackend) -> None:
    table = pa.concat_tables([TABLE] * 6).combine_chunks()
    reader = pa.RecordBatchReader.from_batches(SCHEMA, table.to_batches(max_chunksize=4))
    files = unload(
        reader,
        local_backend,
        PREFIX,
        "p/",
        {"TYPE": "CSV"},
        query_id="q1",
        single=False,
        max_file_size=60,
        overwrite=False,
        use_raw_path=False,
        include_query_id=True,
    )
    assert 1 < len(files) < 6
    assert sum(f.rows for f in files) == 24


def test_single_writes_one_file(local_backend: LocalBackend) -> None:
    table = pa.concat_tables([TABLE] * 5).combine_chunks()
    reader = pa.RecordBatchReader.from_batches(SCHEMA, table.to_batches(max_chunksize=4))
    files = unload(
        reader,
        local_backend,
        PREFIX,
        "p/",
        {"TYPE": "PARQUET"},
        query_id="q1",
        single=True,
        max_file_size=1,
        overwrite=False,
        use_raw_path=False,
        include_query_id=True,
    )
    assert names(files) == ["p/data_q1_0000_00000000.parquet"]
    assert files[0].rows == 20


def test_empty_result_writes_no_file(local_backend: LocalBackend) -> None:
    assert run(local_backend, "e/", table=TABLE.slice(0, 0)) == []
    assert list(local_backend.list_files(PREFIX)) == []


@pytest.mark.parametrize(
    ("path", "modes", "message"),
    [
        ("x.csv", {"use_raw_path": True}, "USE_RAW_PATH=TRUE requires SINGLE=TRUE"),
        ("dir/", {"use_raw_path": True, "single": True}, "requires a file path"),
        (
            "x.csv",
            {"overwrite": True},
            "OVERWRITE=TRUE requires USE_RAW_PATH=TRUE and INCLUDE_QUERY_ID=FALSE",
        ),
        ("x.csv", {"overwrite": True, "use_raw_path": True, "single": True}, "OVERWRITE=TRUE requires"),
    ],
)
def test_mode_rules(local_backend: LocalBackend, path: str, modes: dict[str, Any], message: str) -> None:
    with pytest.raises(StageError, match=message):
        run(local_backend, path, **modes)


def test_raw_path_exists_and_overwrite(local_backend: LocalBackend) -> None:
    raw: dict[str, Any] = {"use_raw_path": True, "single": True, "include_query_id": False}
    run(local_backend, "r/x.csv", **raw)
    with pytest.raises(StageError, match="file already exists: r/x.csv"):
        run(local_backend, "r/x.csv", **raw)
    files = run(local_backend, "r/x.csv", table=TABLE.slice(0, 1), overwrite=True, **raw)
    assert files == [UnloadedFile("r/x.csv", local_backend.stat(PREFIX + "r/x.csv").size, 1)]
    assert read_back(local_backend, "r/x.csv", {"TYPE": "CSV"}) == TABLE.slice(0, 1).to_pylist()


def test_failed_unload_leaves_no_partial_file(local_backend: LocalBackend) -> None:
    def batches() -> Any:
        yield TABLE.to_batches()[0]
        raise RuntimeError("query failed")

    reader = pa.RecordBatchReader.from_batches(SCHEMA, batches())
    with pytest.raises(RuntimeError, match="^query failed$"):
        unload(
            reader,
            local_backend,
            PREFIX,
            "f/",
            {"TYPE": "CSV"},
            query_id="q1",
            single=True,
            max_file_size=1,
            overwrite=False,
            use_raw_path=False,
            include_query_id=True,
        )
    assert list(local_backend.list_files(PREFIX)) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"TYPE": "PARQUET", "COMPRESSION": "BROTLI"}, "PARQUET"),
        ({"TYPE": "CSV", "COMPRESSION": "SNAPPY"}, "SNAPPY"),
        ({"TYPE": "CSV", "QUOTE": "'"}, "QUOTE"),
        ({"TYPE": "CSV", "RECORD_DELIMITER": "||"}, "RECORD_DELIMITER"),
        ({"TYPE": "CSV", "OUTPUT_HEADER": "yes"}, "OUTPUT_HEADER must be TRUE or FALSE, got 'yes'"),
        ({"TYPE": "TSV", "OUTPUT_HEADER": "2"}, "OUTPUT_HEADER must be TRUE or FALSE, got '2'"),
    ],
)
def test_bad_unload_options(local_backend: LocalBackend, options: dict[str, str], message: str) -> None:
    with pytest.raises(StageError, match=message):
        run(local_backend, "", options)


def _numbers(rows: int, batch_rows: int) -> pa.RecordBatchReader:
    table = pa.table(
        {"a": pa.array(range(rows), pa.int64()), "b": pa.array([f"row {i}" for i in range(rows)])}
    )
    return pa.RecordBatchReader.from_batches(SCHEMA, table.to_batches(batch_rows))


def _parallel(backend: LocalBackend, reader: pa.RecordBatchReader, max_file_size: int) -> list[UnloadedFile]:
    return unload(
        reader,
        backend,
        PREFIX,
        "par/",
        {"TYPE": "PARQUET"},
        query_id="q1",
        single=False,
        max_file_size=max_file_size,
        writers=2,
    )


def test_parallel_parquet_unload_writes_every_row_once(local_backend: LocalBackend) -> None:
    files = _parallel(local_backend, _numbers(50_000, 1_000), max_file_size=40_000)
    assert len(files) > 4
    assert names(files) == [f"par/data_q1_0000_{i:08d}.parquet" for i in range(len(files))]
    seen: list[int] = []
    for f in files:
        rows = read_back(local_backend, f.name, {"TYPE": "PARQUET"})
        assert len(rows) == f.rows
        assert f.size == local_backend.stat(PREFIX + f.name).size
        values = [r["a"] for r in rows]
        assert values == sorted(values)  # each file keeps its rows in arrival order
        assert all(r["b"] == f"row {r['a']}" for r in rows)
        seen += values
    assert sorted(seen) == list(range(50_000))


def test_parallel_unload_failure_names_the_error_and_leaves_no_partial_file(
    local_backend: LocalBackend,
) -> None:
    def batches() -> Any:
        yield from _numbers(5_000, 1_000)
        raise RuntimeError("query failed after 5000 rows")

    reader = pa.RecordBatchReader.from_batches(SCHEMA, batches())
    with pytest.raises(RuntimeError, match="query failed after 5000 rows"):
        _parallel(local_backend, reader, max_file_size=64 << 20)  # no file fills up before the error
    assert list(local_backend.list_files(PREFIX)) == []


def test_parallel_unload_stops_at_a_file_that_exists(local_backend: LocalBackend) -> None:
    with local_backend.open_output(PREFIX + "par/data_q1_0000_00000001.parquet") as out:
        out.write(b"keep me")
    with pytest.raises(StageError, match="file already exists: par/data_q1_0000_00000001.parquet"):
        _parallel(local_backend, _numbers(50_000, 1_000), max_file_size=40_000)
    with local_backend.open_input(PREFIX + "par/data_q1_0000_00000001.parquet") as kept:
        assert kept.read() == b"keep me"
