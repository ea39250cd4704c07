"""What executing a statement gives back: an Arrow result or an update count."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from engine.errors import translated_stream_errors

UPDATE_COUNT_SCHEMA = pa.schema([pa.field("Count", pa.int64())])


@dataclass
class Result:
    """A statement's outcome.

    ``table`` holds a result read completely; ``stream`` the rest of a large one, still being
    produced by DuckDB on the session's connection (``on_close`` frees the session afterwards).
    """

    schema: pa.Schema
    table: pa.Table | None = None
    stream: Iterator[pa.RecordBatch] | None = None
    rowcount: int = -1
    is_update: bool = False
    on_close: Callable[[], None] | None = field(default=None, repr=False)
    # COPY INTO <table>: (file format TYPE, bytes of the staged files it read), for /metrics.
    copy_read: tuple[str, int] | None = field(default=None, repr=False)

    @classmethod
    def of_table(cls, table: pa.Table, *, is_update: bool = False) -> Result:
        return cls(schema=table.schema, table=table, rowcount=table.num_rows, is_update=is_update)

    @classmethod
    def update(cls, rowcount: int) -> Result:
        table = (
            pa.table({"Count": pa.array([rowcount], pa.int64())})
            if rowcount >= 0
            else (UPDATE_COUNT_SCHEMA.empty_table())
        )
        return cls(schema=UPDATE_COUNT_SCHEMA, table=table, rowcount=rowcount, is_update=True)

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            if self.table is not None:
                yield from self.table.to_batches()
            if self.stream is not None:
                yield from self.stream
        finally:
            self.close()

    def read_all(self) -> pa.Table:
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)

    def close(self) -> None:
        hook, self.on_close = self.on_close, None
        self.stream = None
        if hook is not None:
            hook()


def read_ahead(reader: pa.RecordBatchReader, budget: int | None, on_close: Callable[[], None]) -> Result:
    """A result read completely when it is under ``budget`` bytes (``None``: always); otherwise the
    batches read so far plus the rest of the stream, which keeps DuckDB busy until ``on_close``."""
    head: list[pa.RecordBatch] = []
    size = 0
    while budget is None or size < budget:
        try:
            with translated_stream_errors():
                batch = reader.read_next_batch()
        except StopIteration:
            return Result.of_table(pa.Table.from_batches(head, schema=reader.schema))
        head.append(batch)
        size += batch.nbytes

    def rest() -> Iterator[pa.RecordBatch]:
        yield from head
        with translated_stream_errors():
            yield from reader

    return Result(schema=reader.schema, stream=rest(), on_close=on_close)
