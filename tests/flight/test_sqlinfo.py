"""GetSqlInfo answer: exact schema, union slots per id, id selection."""

from __future__ import annotations

import pyarrow as pa
import pytest

from flight.sqlinfo import (
    SQLINFO_DUCKDB_VERSION,
    SQLINFO_SCHEMA,
    SQLINFO_UNION_TYPE,
    describe,
    sql_info_table,
    sql_info_values,
)

VERSIONS = {"server_version": "0.1.0", "arrow_version": "26.0.1", "duckdb_version": "2.0.1"}

STRING, BOOL, BIGINT, INT32, STRING_LIST, INT32_LIST_MAP = range(6)


def info(ids: list[int], **kwargs: object) -> pa.Table:
    return sql_info_table(ids, **{**VERSIONS, **kwargs})  # type: ignore[arg-type]


def type_codes(table: pa.Table) -> dict[int, int]:
    union = table.column("value").combine_chunks()
    return dict(zip(table.column("info_name").to_pylist(), union.type_codes.to_pylist(), strict=True))


def test_schema_is_exact() -> None:
    expected = pa.schema(
        [
            pa.field("info_name", pa.uint32(), nullable=False),
            pa.field(
                "value",
                pa.dense_union(
                    [
                        pa.field("string_value", pa.utf8(), nullable=False),
                        pa.field("bool_value", pa.bool_(), nullable=False),
                        pa.field("bigint_value", pa.int64(), nullable=False),
                        pa.field("int32_bitmask", pa.int32(), nullable=False),
                        pa.field("string_list", pa.list_(pa.utf8()), nullable=False),
                        pa.field(
                            "int32_to_int32_list_map",
                            pa.map_(pa.int32(), pa.list_(pa.int32())),
                            nullable=False,
                        ),
                    ],
                    type_codes=[0, 1, 2, 3, 4, 5],
                ),
                nullable=False,
            ),
        ]
    )
    assert SQLINFO_SCHEMA.equals(expected)
    assert [SQLINFO_UNION_TYPE.field(i).nullable for i in range(6)] == [False] * 6
    for ids in ([], [0], [517], [8, 508], [424242]):
        table = info(ids)
        assert table.schema.equals(SQLINFO_SCHEMA)
        table.validate(full=True)
        # the same schema survives IPC (what the Flight layer sends)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        assert pa.ipc.open_stream(sink.getvalue()).read_all().equals(table)


def test_transaction_support_is_int32_one() -> None:
    table = info([8])
    assert type_codes(table) == {8: INT32}
    assert describe(table) == {8: 1}


def test_server_identity_strings() -> None:
    table = info([0, 1, 2])
    assert type_codes(table) == {0: STRING, 1: STRING, 2: STRING}
    assert describe(table) == {0: "stageflight", 1: "0.1.0", 2: "26.0.1"}


def test_empty_ids_return_every_standard_id_sorted() -> None:
    table = info([])
    ids = table.column("info_name").to_pylist()
    assert ids == sorted(ids)
    required = {0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 100, 101} | set(range(500, 577))
    assert required <= set(ids)
    assert SQLINFO_DUCKDB_VERSION not in ids  # custom ids only on request (JDBC's EnumMap)
    assert all(info_id < 10000 for info_id in ids)


def test_requested_ids_in_order_once_unknown_skipped() -> None:
    table = info([504, 999, 0, 504, 7, SQLINFO_DUCKDB_VERSION])
    assert table.column("info_name").to_pylist() == [504, 0, SQLINFO_DUCKDB_VERSION]
    assert describe(table) == {504: '"', 0: "stageflight", SQLINFO_DUCKDB_VERSION: "2.0.1"}
    assert info([999, 424242]).num_rows == 0


# Value type of each id per FlightSql.proto's SqlInfo enum.
EXPECTED_CODES = {
    **dict.fromkeys((0, 1, 2, 504, 513, 514, 529, 530, 531), STRING),
    **dict.fromkeys((3, 4, 5, 9, 10, 11, 500, 501, 502, 506, 515, 516, 518, 519, 520, 521, 523, 524), BOOL),
    **dict.fromkeys((527, 532, 536, 537, 539, 556, 563, 565, 566, 572, 573, 574, 575, 576), BOOL),
    **dict.fromkeys((8, 100, 101, 503, 505, 507, 522, 525, 526, 528, 533, 534, 535, 538, 540), INT32),
    **dict.fromkeys((564, 567, 568, 569, 570, 571), INT32),
    **dict.fromkeys((*range(541, 556), *range(557, 563)), BIGINT),
    **dict.fromkeys((508, 509, 510, 511, 512), STRING_LIST),
    517: INT32_LIST_MAP,
}


def test_every_id_uses_the_slot_of_its_type() -> None:
    assert type_codes(info([])) == EXPECTED_CODES


@pytest.mark.parametrize(
    ("info_id", "expected"),
    [
        (3, False),
        (4, True),
        (5, False),
        (9, True),
        (10, True),
        (11, True),
        (100, 0),
        (101, 0),
        (500, False),
        (501, True),
        (502, True),
        (504, '"'),
        (513, "\\"),
        (514, ""),
        (515, True),
        (516, True),
        (573, False),
    ],
)
def test_values(info_id: int, expected: object) -> None:
    assert describe(info([info_id])) == {info_id: expected}


def test_lists_decode() -> None:
    values = describe(info([508, 509, 510, 511, 512]))
    assert "SELECT" in values[508]  # type: ignore[operator]
    assert "abs" in values[509]  # type: ignore[operator]
    assert "lower" in values[510]  # type: ignore[operator]
    assert "current_database" in values[511]  # type: ignore[operator]
    assert "date_trunc" in values[512]  # type: ignore[operator]
    assert describe(info([508], keywords=["QUALIFY", "PIVOT"])) == {508: ["QUALIFY", "PIVOT"]}


def test_convert_map_decodes() -> None:
    table = info([517])
    convert = dict(describe(table)[517])  # type: ignore[call-overload]
    varchar, integer, date, timestamp, bigint = 19, 7, 4, 16, 0
    assert set(convert) == set(range(20))
    assert set(convert[varchar]) == set(range(20))
    assert bigint in convert[integer] and varchar in convert[integer]
    assert timestamp in convert[date]
    assert all(targets == sorted(targets) for targets in convert.values())
    map_type = table.schema.field("value").type.field(INT32_LIST_MAP).type
    assert map_type == pa.map_(pa.int32(), pa.list_(pa.int32()))


def test_values_helper_covers_the_table() -> None:
    values = sql_info_values(**VERSIONS)
    assert set(values) == set(EXPECTED_CODES) | {SQLINFO_DUCKDB_VERSION}
    assert {info_id: code for info_id, (code, _) in values.items() if info_id < 10000} == EXPECTED_CODES
