"""stages.batching: small batches joined (coalesce), batches produced ahead on a thread (read_ahead)."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from stages.batching import coalesce, read_ahead


def _batches(sizes: list[int]) -> list[pa.RecordBatch]:
    out, start = [], 0
    for n in sizes:
        out.append(pa.record_batch({"i": pa.array(range(start, start + n), pa.int64())}))
        start += n
    return out


def test_small_batches_are_joined_in_order():
    got = list(coalesce(_batches([3, 3, 3, 3, 1]), 5))
    assert [b.num_rows for b in got] == [6, 6, 1]
    assert [v for b in got for v in b.column(0).to_pylist()] == list(range(13))


def test_large_batches_pass_through_and_flush_the_pending_ones():
    source = _batches([2, 10, 7, 1])
    got = list(coalesce(source, 5))
    assert [b.num_rows for b in got] == [12, 7, 1]
    assert got[1] is source[2]  # untouched, not copied
    assert [v for b in got for v in b.column(0).to_pylist()] == list(range(20))


def test_nothing_in_nothing_out():
    assert list(coalesce([], 10)) == []


def test_read_ahead_keeps_every_batch_in_order():
    source = _batches([4, 1, 7, 2, 5])
    got = list(read_ahead(iter(source), 2))
    assert [b.num_rows for b in got] == [4, 1, 7, 2, 5]
    assert [v for b in got for v in b.column(0).to_pylist()] == list(range(19))


def test_read_ahead_raises_the_producers_error_after_the_batches_before_it():
    def failing():
        yield from _batches([3, 3])
        raise ValueError("bad row group in part_01.parquet")

    got: list[int] = []
    with pytest.raises(ValueError, match="bad row group in part_01.parquet"):
        for batch in read_ahead(failing(), 1):
            got.append(batch.num_rows)
    assert got == [3, 3]


def test_read_ahead_stops_and_closes_the_source_when_the_consumer_stops():
    closed = threading.Event()

    def endless():
        try:
            start = 0
            while True:
                yield pa.record_batch({"i": pa.array(range(start, start + 2), pa.int64())})
                start += 2
        finally:
            closed.set()

    stream = read_ahead(endless(), 2)
    first = next(stream)
    stream.close()  # what happens when an INSERT fails and the stream is dropped
    assert first.column(0).to_pylist() == [0, 1]
    assert closed.wait(5)
    assert not any(t.name == "read-ahead" and t.is_alive() for t in threading.enumerate())
