"""Parquet files pyarrow cannot write, written by DuckDB: INTERVAL and UNION columns.

pyarrow 26 refuses both (``pq.ParquetWriter(sink, pa.schema([("i", pa.month_day_nano_interval())]))``
raises "Unhandled type for Arrow to Parquet schema conversion: month_day_nano_interval"; the same for
``sparse_union``), and it has no way to mark a FIXED_LEN_BYTE_ARRAY(12) column as Parquet INTERVAL,
which is the only thing DuckDB's ``read_parquet`` reads back as INTERVAL. DuckDB writes both as it
always does (INTERVAL as Parquet INTERVAL, UNION as a STRUCT of its tag and members), so such a file's
batches go to a local Arrow IPC file as they come, and on close a private locked-down DuckDB (it may
reach only that temporary directory) writes the Parquet file, which is copied to the output stream.
Its size is known only once DuckDB has written it, so MAX_FILE_SIZE is held against the Arrow bytes
buffered (:attr:`DuckdbParquetWriter.buffered`): such files come out smaller than the limit.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pyarrow as pa

from stages.duckdb_sandbox import open_locked

_CHUNK = 1 << 20
_CODECS = {"zstd": "zstd", "snappy": "snappy", "none": "uncompressed", "gzip": "gzip", "lz4": "lz4_raw"}


def needs_duckdb(schema: pa.Schema) -> bool:
    """Whether pyarrow's Parquet writer cannot take ``schema`` (an interval or union anywhere)."""
    return any(_unwritable(field.type) for field in schema)


def _unwritable(dtype: pa.DataType) -> bool:
    if pa.types.is_interval(dtype) or pa.types.is_union(dtype):
        return True
    if pa.types.is_dictionary(dtype):
        return _unwritable(dtype.value_type)
    return any(_unwritable(dtype.field(i).type) for i in range(dtype.num_fields))


class DuckdbParquetWriter:
    def __init__(self, stream: pa.NativeFile, schema: pa.Schema, codec: str) -> None:
        self._stream, self._codec = stream, _CODECS[codec]
        self._dir = Path(tempfile.mkdtemp(prefix="stageflight-unload-"))
        try:
            self._sink = pa.OSFile(str(self._dir / "batches.arrow"), "wb")
            self._ipc = pa.ipc.new_file(self._sink, schema)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self._closed = False

    @property
    def buffered(self) -> int:
        """Bytes of Arrow buffered so far (a bound on the Parquet file's size)."""
        return int(self._sink.tell())

    def write(self, batch: pa.RecordBatch) -> None:
        self._ipc.write_batch(batch)

    def close(self) -> None:
        self._finish(write=True)

    def discard(self) -> None:
        """Drop the batches without writing the file (the unload failed)."""
        self._finish(write=False)

    def _finish(self, *, write: bool) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._ipc.close()
            self._sink.close()
            if write:
                self._write_parquet()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    def _write_parquet(self) -> None:
        out = self._dir / "out.parquet"
        with pa.memory_map(str(self._dir / "batches.arrow")) as source:
            table = pa.ipc.open_file(source).read_all()
            con = open_locked(":memory:", allowed_directory=str(self._dir))
            try:
                con.register("batches", table)
                target = str(out).replace("'", "''")
                con.execute(f"COPY batches TO '{target}' (FORMAT PARQUET, COMPRESSION {self._codec})")
            finally:
                con.close()
            del table
        with open(out, "rb") as written:
            while chunk := written.read(_CHUNK):
                self._stream.write(chunk)
