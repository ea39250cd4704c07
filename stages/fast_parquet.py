"""The fast Parquet load path: whole files handed to DuckDB as Arrow, with no per-row work in Python.

COPY takes it when nothing has to be checked row by row (ON_ERROR = ABORT, no load options, every
target column present in the file); DuckDB's INSERT then does the casting. Two readers:

* pyarrow, reading the string columns a file stores dictionary-encoded as Arrow dictionaries. The
  strings are never materialised, and DuckDB's Arrow scan takes them as dictionary vectors. On the
  lineitem benchmark this reader needs 0.4-0.6 CPU-s less per 10M rows than the confined DuckDB.
* the confined DuckDB of :mod:`stages.native`, for local files without such columns: on plain columns
  its decoder beats pyarrow's by 0.2-0.4 CPU-s per 10M rows.

Files whose layouts are equal share one stream (one INSERT).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from stages.parquet_io import parquet_batches
from stages.storage.base import StorageBackend


@dataclass(frozen=True)
class ParquetLayout:
    """What the fast path reads from one file.

    Attributes:
        columns: file columns, one per target column, in target order.
        types: their Arrow types as the reader delivers them (dictionaries included).
        dictionary: columns read as Arrow dictionaries (pyarrow reader only).
        arrow: read with pyarrow; False: with the confined DuckDB (local files only).
        rows: the file's row count, from its footer.
    """

    columns: tuple[str, ...]
    types: tuple[pa.DataType, ...]
    dictionary: tuple[str, ...]
    arrow: bool
    rows: int

    @property
    def shape(self) -> tuple[object, ...]:
        """Files with the same shape can be read as one stream."""
        return self.columns, self.types, self.dictionary, self.arrow


def inspect_parquet(
    backend: StorageBackend,
    key: str,
    target_names: Sequence[str],
    *,
    case_sensitive: bool,
    batch_rows: int,
    duckdb_reader: bool,
) -> ParquetLayout | None:
    """The file's fast-path layout, or None when only the careful reader can take it.

    ``duckdb_reader``: the confined DuckDB can read this backend's files.
    """
    with backend.open_input(key) as source:
        return _layout(source, target_names, case_sensitive, batch_rows, duckdb_reader)


def _layout(
    source: pa.NativeFile,
    target_names: Sequence[str],
    case_sensitive: bool,
    batch_rows: int,
    duckdb_reader: bool,
) -> ParquetLayout | None:
    parquet = pq.ParquetFile(source)
    schema = parquet.schema_arrow
    columns = _match_columns(schema.names, target_names, case_sensitive)
    if columns is None:
        return None
    types = [schema.field(c).type for c in columns]
    rows = int(parquet.metadata.num_rows)
    if not all(_arrow_scannable(t) for t in types):
        # DuckDB's own reader knows Parquet types its Arrow scan does not take (float16, uuid...).
        return ParquetLayout(tuple(columns), tuple(types), (), False, rows) if duckdb_reader else None
    dictionary = _dictionary_columns(source, parquet, columns, batch_rows)
    if dictionary:
        read_as = pq.ParquetFile(source, metadata=parquet.metadata, read_dictionary=dictionary).schema_arrow
        types = [read_as.field(c).type for c in columns]
    arrow = bool(dictionary) or not duckdb_reader
    return ParquetLayout(tuple(columns), tuple(types), tuple(dictionary), arrow, rows)


def arrow_stream(
    backend: StorageBackend,
    keys: Sequence[str],
    layout: ParquetLayout,
    batch_rows: int,
    *,
    use_threads: bool = True,
) -> pa.RecordBatchReader:
    """The files' ``layout.columns`` as one stream, one row group at a time (bounded memory);
    ``use_threads`` as in :func:`stages.parquet_io.parquet_batches`."""
    schema = pa.schema([pa.field(c, t) for c, t in zip(layout.columns, layout.types, strict=True)])

    def batches() -> Iterator[pa.RecordBatch]:
        for key in keys:
            with backend.open_input(key) as source:
                parquet = pq.ParquetFile(source, read_dictionary=list(layout.dictionary))
                for batch in parquet_batches(parquet, batch_rows, layout.columns, use_threads=use_threads):
                    # Same types by construction; this drops per-file field metadata and nullability.
                    yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _match_columns(
    in_file: Sequence[str], target_names: Sequence[str], case_sensitive: bool
) -> list[str] | None:
    if case_sensitive:
        present = set(in_file)
        wanted = [n if n in present else None for n in target_names]
    else:
        lowered = {n.lower(): n for n in in_file}
        if len(lowered) != len(in_file):
            return None  # ambiguous names: the careful reader reports them
        wanted = [lowered.get(n.lower()) for n in target_names]
    if any(w is None for w in wanted):
        return None
    return [w for w in wanted if w is not None]


def _arrow_scannable(t: pa.DataType) -> bool:
    """Types DuckDB's Arrow scan takes as they are."""
    if pa.types.is_float16(t):
        return False
    if (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_date(t)
        or pa.types.is_time(t)
        or pa.types.is_timestamp(t)
    ):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _arrow_scannable(t.value_type)
    if pa.types.is_struct(t):
        return all(_arrow_scannable(t.field(i).type) for i in range(t.num_fields))
    return False


def _dictionary_columns(
    source: pa.NativeFile, parquet: pq.ParquetFile, columns: Sequence[str], batch_rows: int
) -> list[str]:
    """String columns worth reading as Arrow dictionaries.

    A column qualifies when every row group stores it with a dictionary page and the first batch's
    dictionary is at most half its rows. Writers fall back to plain pages when a dictionary fills
    up (high-cardinality text); read as a dictionary, such a column costs twice the time.
    """
    metadata = parquet.metadata
    if metadata.num_row_groups == 0:
        return []
    index = {metadata.schema.column(i).path: i for i in range(metadata.num_columns)}
    schema = parquet.schema_arrow
    candidates = [
        c
        for c in columns
        if c in index
        and (pa.types.is_string(schema.field(c).type) or pa.types.is_large_string(schema.field(c).type))
        and all(
            metadata.row_group(g).column(index[c]).has_dictionary_page for g in range(metadata.num_row_groups)
        )
    ]
    if not candidates:
        return []
    probe = pq.ParquetFile(source, metadata=metadata, read_dictionary=candidates)
    first = next(probe.iter_batches(batch_size=batch_rows, row_groups=[0], columns=candidates), None)
    if first is None:
        return []
    return [c for c in candidates if 2 * len(first.column(c).dictionary) <= max(first.num_rows, 1)]
