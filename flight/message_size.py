"""Result batches cut to fit one gRPC message.

Clients refuse larger messages: the ADBC and JDBC drivers keep gRPC's default receive limit of
16 MiB. A DuckDB batch of 131,072 wide rows is easily larger, so such batches go out in slices
(zero-copy; the IPC writer sends only the sliced part of each buffer).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

# Below the 16 MiB limit with room for the IPC framing and buffer padding.
MAX_BATCH_BYTES = 12 << 20


def sliced(batches: Iterable[pa.RecordBatch], max_bytes: int = MAX_BATCH_BYTES) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        size = batch.nbytes
        if size <= max_bytes or batch.num_rows <= 1:
            yield batch
            continue
        rows = max(1, batch.num_rows * max_bytes // size)
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def fitted(table: pa.Table, max_bytes: int = MAX_BATCH_BYTES) -> pa.Table:
    """``table`` itself when every chunk fits one message, else the same rows in slices."""
    batches = table.to_batches()
    if all(b.nbytes <= max_bytes for b in batches):
        return table
    return pa.Table.from_batches(list(sliced(batches, max_bytes)), schema=table.schema)
