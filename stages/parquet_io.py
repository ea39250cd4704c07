"""Reading Parquet files in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq


def parquet_batches(
    parquet: pq.ParquetFile,
    batch_rows: int,
    columns: Sequence[str] | None = None,
    *,
    use_threads: bool = True,
) -> Iterator[pa.RecordBatch]:
    """The file's batches, one row group at a time.

    ``iter_batches`` over the whole file pre-buffers every row group's bytes and keeps them until the
    reader is done (memory grew with the file: ~1 GiB for a 1 GiB file, measured with pyarrow 26).
    Per row group, each pre-buffer (coalesced reads, which object stores need) replaces the last.

    A row group is split into equal batches of at least ``batch_rows`` rows (fewer only when the
    whole group is smaller), not ``batch_rows`` and a remainder: a small remainder would be joined to
    the next batch (:func:`stages.batching.coalesce`), a copy that cost ~0.07 CPU-s per 10M rows
    in 16 files of 625k-row groups (in-process, 3 runs each).

    ``use_threads``: decode columns on pyarrow's pool, beside the caller; False decodes on the
    calling thread (a node held to one core).
    """
    wanted = list(columns) if columns is not None else None
    for index in range(parquet.num_row_groups):
        rows = parquet.metadata.row_group(index).num_rows
        parts = max(1, rows // batch_rows)
        size = max(1, -(-rows // parts))
        yield from parquet.iter_batches(
            batch_size=size, row_groups=[index], columns=wanted, use_threads=use_threads
        )
