"""Issue 16 item 5 at the wire: SqlInfo 562 (default transaction isolation) travels in the int64 slot of
the value union, as the Java reference server sends it (the JDBC driver casts it to Long)."""

from __future__ import annotations

from flight import commands as cmd
from tests.conftest import ROOT_PASSWORD
from tests.flight.rawclient import RawClient

BIGINT_SLOT = 2  # string, bool, bigint, int32 bitmask, string list, int32-to-int32-list map


def test_default_isolation_is_an_int64_over_the_wire(server):
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    try:
        table = raw.fetch(raw.info(cmd.CommandGetSqlInfo(info=[562])))
    finally:
        raw.close()
    union = table.column("value").combine_chunks()
    assert table.column("info_name").to_pylist() == [562]
    assert union.type_codes.to_pylist() == [BIGINT_SLOT]
    assert str(union.type.field(BIGINT_SLOT).type) == "int64"
    assert union.to_pylist() == [3]  # SQL_TRANSACTION_REPEATABLE_READ
