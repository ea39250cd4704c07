"""CSV/TSV files whose RECORD_DELIMITER is not a line break, read as lines.

Arrow's CSV reader and Python's csv module only end a record at '\\n' or '\\r\\n'. A file written with
another record delimiter (``';'``, ``'|'``, ``'\\x01'``) is read through :class:`RecordsAsLines`, which
turns each delimiter that ends a record into '\\n' while the bytes stream past. As in Databend, the
delimiter inside a quoted field, or right after the escape character, is data and stays as it is.
Line breaks in the file are not special to Databend there; here they still end a record (the readers
below cannot tell them from the translated ones), so a file may put each record on its own line.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_CHUNK = 1 << 20


class RecordsAsLines(io.RawIOBase):
    """A readable stream over ``raw`` with each record-ending ``record`` byte replaced by '\\n'.

    ``quote`` and ``escape`` are the dialect's (None: none); the quote state carries across reads,
    so a quoted field may span any number of chunks.
    """

    def __init__(self, raw: Any, record: str, quote: str | None, escape: str | None) -> None:
        super().__init__()
        self._raw = raw
        self._record = record.encode("ascii")
        self._quote = quote.encode() if quote else None
        self._escape = escape.encode() if escape else None
        self._in_quotes = False
        self._skip_next = False  # the last chunk ended with the escape character
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._pending:
            chunk = self._raw.read(max(len(view), _CHUNK))
            if not chunk:
                return 0
            self._pending = self._translate(bytes(chunk))
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _translate(self, chunk: bytes) -> bytes:
        """One chunk, vectorised: a delimiter ends a record unless escaped or inside quotes."""
        if self._quote is None and self._escape is None:
            return chunk.replace(self._record, b"\n")
        n = len(chunk)
        data = pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(chunk)])
        ends = pc.equal(data, self._record[0])
        escaped = self._escaped(chunk)
        if escaped is not None:
            ends = pc.and_not(ends, escaped)
        if self._quote is not None:
            quotes = pc.equal(data, self._quote[0])
            if escaped is not None:
                quotes = pc.and_not(quotes, escaped)
            # Quotes seen up to each byte, with the chunks before: odd means inside a quoted field.
            seen = pc.cumulative_sum(pc.cast(quotes, pa.int64()), start=int(self._in_quotes))
            inside = pc.equal(pc.bit_wise_and(seen, 1), 1)
            ends = pc.and_not(ends, inside)
            self._in_quotes = bool(seen[n - 1].as_py() & 1) if n else self._in_quotes
        if not pc.any(ends).as_py():
            return chunk
        out = pc.if_else(ends, pa.scalar(0x0A, pa.uint8()), data)
        return out.buffers()[1].to_pybytes()[out.offset : out.offset + n]

    def _escaped(self, chunk: bytes) -> pa.Array | None:
        """Where a byte follows the escape character (None: nowhere); a loop over escapes only."""
        if self._escape is None:
            return None
        marks: list[int] = []
        pos = 0
        if self._skip_next:
            self._skip_next = False
            if chunk:
                marks.append(0)
                pos = 1
        while (at := chunk.find(self._escape, pos)) >= 0:
            if at + 1 >= len(chunk):
                self._skip_next = True
                break
            marks.append(at + 1)
            pos = at + 2
        if not marks:
            return None
        mask = bytearray(len(chunk))
        for at in marks:
            mask[at] = 1
        return pc.equal(pa.Array.from_buffers(pa.uint8(), len(chunk), [None, pa.py_buffer(mask)]), 1)

    def close(self) -> None:
        if not self.closed:
            try:
                self._raw.close()
            finally:
                super().close()


def records_as_lines(raw: Any, record: str, quote: str | None, escape: str | None) -> Any:
    """``raw`` itself when records already end at line breaks, else a buffered translating stream."""
    if record in ("\n", "\r\n"):
        return raw
    return io.BufferedReader(RecordsAsLines(raw, record, quote, escape), _CHUNK)
