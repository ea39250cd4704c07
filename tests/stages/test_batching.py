"""stages.batching.coalesce: small batches joined, order and values kept."""

from __future__ import annotations

import pyarrow as pa

from stages.batching import coalesce


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
