"""RECORD_DELIMITER translation (stages.records): quotes and escapes across chunk boundaries."""

from __future__ import annotations

import pyarrow as pa
import pytest

from stages import records
from stages.records import RecordsAsLines


def _read_all(data: bytes, record: str, quote: str | None, escape: str | None) -> bytes:
    stream = RecordsAsLines(pa.BufferReader(data), record, quote, escape)
    out, buf = b"", bytearray(3)
    while size := stream.readinto(buf):
        out += bytes(buf[:size])
    stream.close()
    return out


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
@pytest.mark.parametrize(
    "data, record, quote, escape, expected",
    [
        (b'1,"a;b";2,"c""d;";3,e;', ";", '"', None, b'1,"a;b"\n2,"c""d;"\n3,e\n'),
        (b"1\ta\\;b;2\tc\\\\;3\td;", ";", None, "\\", b"1\ta\\;b\n2\tc\\\\\n3\td\n"),
        (b'1,"a\\";b";2,x;', ";", '"', "\\", b'1,"a\\";b"\n2,x\n'),
        (b"1,a\x012,b\x01", "\x01", None, None, b"1,a\n2,b\n"),
    ],
)
def test_delimiters_outside_quotes_and_escapes_become_line_breaks(
    monkeypatch, chunk, data, record, quote, escape, expected
):
    monkeypatch.setattr(records, "_CHUNK", chunk)
    assert _read_all(data, record, quote, escape) == expected
