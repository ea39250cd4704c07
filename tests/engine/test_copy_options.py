"""engine.sql.copy: every COPY option lands in its field, and bad values are refused as they are read."""

from __future__ import annotations

import re

import pytest

from engine.errors import StatementRejected
from engine.sql.copy import CopyIntoStage, CopyIntoTable, parse_copy


def _load(sql: str) -> CopyIntoTable:
    parsed = parse_copy(sql)
    assert isinstance(parsed, CopyIntoTable)
    return parsed


def _unload(sql: str) -> CopyIntoStage:
    parsed = parse_copy(sql)
    assert isinstance(parsed, CopyIntoStage)
    return parsed


def test_load_options_fill_their_fields() -> None:
    load = _load(
        "COPY INTO t FROM @s FILES = ('a.csv', 'b.csv') PATTERN = '.*[.]csv' "
        "FILE_FORMAT = (TYPE = CSV) ON_ERROR = continue MAX_FILES = 3 SIZE_LIMIT = 10 PURGE = TRUE "
        "FORCE = true RETURN_FAILED_ONLY = TRUE COLUMN_MATCH_MODE = case_sensitive "
        "VALIDATION_MODE = RETURN_2_ROWS"
    )
    assert load.files == ["a.csv", "b.csv"]
    assert load.pattern == ".*[.]csv"
    assert load.file_format["TYPE"] == "CSV"
    assert load.on_error == "CONTINUE"
    assert (load.max_files, load.size_limit) == (3, 10)
    assert load.purge and load.force and load.return_failed_only
    assert load.column_match_mode == "CASE_SENSITIVE"
    assert load.validation_mode == "RETURN_2_ROWS"


def test_load_defaults() -> None:
    load = _load("COPY INTO t FROM @s")
    assert load == CopyIntoTable(table=["t"], columns=None, source="@s")


def test_unload_options_fill_their_fields() -> None:
    unload = _unload(
        "COPY INTO @s/out/ FROM t FILE_FORMAT = (TYPE = NDJSON) SINGLE = TRUE MAX_FILE_SIZE = 1000 "
        "OVERWRITE = TRUE USE_RAW_PATH = TRUE INCLUDE_QUERY_ID = FALSE DETAILED_OUTPUT = TRUE"
    )
    assert unload.file_format["TYPE"] == "NDJSON"
    assert unload.single and unload.overwrite and unload.use_raw_path and unload.detailed_output
    assert unload.max_file_size == 1000
    assert not unload.include_query_id


def test_unload_defaults() -> None:
    unload = _unload("COPY INTO @s FROM (SELECT 1)")
    assert unload == CopyIntoStage(target="@s", source_table=None, source_query="SELECT 1")


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("COPY INTO t FROM @s MAX_FILES = 0", "MAX_FILES must be between 1 and 14999"),
        ("COPY INTO t FROM @s MAX_FILES = 15000", "MAX_FILES must be between 1 and 14999"),
        ("COPY INTO t FROM @s COLUMN_MATCH_MODE = x", "COLUMN_MATCH_MODE must be one of"),
        ("COPY INTO t FROM @s VALIDATION_MODE = RETURN_ROWS", "VALIDATION_MODE must be RETURN_ERRORS"),
        # The first bad option is the one reported, before the options after it are read.
        ("COPY INTO t FROM @s MAX_FILES = 0 NOPE = 1", "MAX_FILES must be between"),
        ("COPY INTO t FROM @s PURGE = maybe", "PURGE must be TRUE or FALSE, got MAYBE"),
        ("COPY INTO t FROM @s SIZE_LIMIT = -1", "SIZE_LIMIT must be a whole number"),
        ("COPY INTO t FROM @s FILES 'a'", "'=' after FILES"),
        ("COPY INTO t FROM @s FILES = 'a'", "'(' after FILES ="),
        ("COPY INTO t FROM @s PATTERN 'a'", "'=' after PATTERN"),
        ("COPY INTO t FROM @s SINGLE = TRUE", "Unknown COPY option: SINGLE"),
        ("COPY INTO @s FROM t PURGE = TRUE", "Unknown COPY option: PURGE"),
        ("COPY INTO @s FROM t PARTITION = x", "COPY INTO @stage option PARTITION is not supported"),
        ("COPY INTO @s FROM t VALIDATION_MODE = x", "COPY INTO @stage option VALIDATION_MODE is not"),
        ("COPY INTO @s FROM t SINGLE = 1", "SINGLE must be TRUE or FALSE"),
    ],
)
def test_bad_options_are_refused(sql: str, message: str) -> None:
    with pytest.raises(StatementRejected, match=re.escape(message)):
        parse_copy(sql)
