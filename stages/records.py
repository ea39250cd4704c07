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
import re
from typing import Any

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
        specials = b"".join(c for c in (self._record, self._quote, self._escape) if c)
        self._specials = re.compile(b"[" + re.escape(specials) + b"]")
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
        if self._quote is None and self._escape is None:
            return chunk.replace(self._record, b"\n")
        out = bytearray(chunk)
        pos = 0
        if self._skip_next:
            pos, self._skip_next = 1, False
        while (found := self._specials.search(chunk, pos)) is not None:
            at = found.start()
            char = chunk[at : at + 1]
            if char == self._escape:
                if at + 1 >= len(chunk):
                    self._skip_next = True
                pos = at + 2
                continue
            if char == self._quote:
                self._in_quotes = not self._in_quotes
            elif not self._in_quotes:
                out[at] = 0x0A
            pos = at + 1
        return bytes(out)

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
