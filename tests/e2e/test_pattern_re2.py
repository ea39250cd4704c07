"""PATTERN over ADBC: linear-time matching and clear refusals in every statement that takes one.

Regression for issue 11 item 3: with Python's backtracking ``re`` the pattern ``(a+)+b`` against a
file named ``'a' * 40`` takes about 2**40 steps (hours, holding the GIL, so every user froze).
These tests simply completing with the right answer is the check.
"""

from __future__ import annotations

import re

import adbc_driver_manager.dbapi as dbapi
import pytest

from tests.e2e.stage_helpers import execute, put, query

NAME = "a" * 40
EVIL = "(a+)+b"
BACKREF_ERROR = (
    "Invalid PATTERN '(a)\\1': backreferences such as \\1 are not supported"
    " (PATTERN uses linear-time RE2 syntax)"
)


@pytest.fixture
def staged(user):
    put(user, f"@~/redos/{NAME}", b"1\n2\n")
    return user


def test_list_and_remove_with_a_catastrophic_pattern(staged):
    assert query(staged, f"LIST @~/redos/ PATTERN = '{EVIL}'") == []
    assert execute(staged, f"REMOVE @~/redos/ PATTERN = '{EVIL}'") == 0
    # The same shape that does match: the file is listed, so the pattern really ran.
    assert [r["name"] for r in query(staged, "LIST @~/redos/ PATTERN = '(a+)+'")] == [f"redos/{NAME}"]


def test_copy_select_and_table_functions_with_a_catastrophic_pattern(staged, unique_table):
    table = unique_table("redos")
    execute(staged, f"CREATE TABLE {table} (x INTEGER)")
    copy = f"COPY INTO {table} FROM @~/redos/ FILE_FORMAT = (TYPE = CSV) PATTERN = "
    assert query(staged, f"{copy}'{EVIL}'") == []
    assert query(staged, f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]
    with pytest.raises(dbapi.Error, match="No files found at this stage location"):
        query(staged, f"SELECT * FROM @~/redos/ (FILE_FORMAT => 'CSV', PATTERN => '{EVIL}') t")
    with pytest.raises(dbapi.Error, match="INFER_SCHEMA found no files at this location"):
        query(staged, f"SELECT * FROM INFER_SCHEMA(LOCATION => '@~/redos/', PATTERN => '{EVIL}')")
    assert query(staged, f"SELECT * FROM LIST_STAGE(LOCATION => '@~/redos/', PATTERN => '{EVIL}')") == []
    loaded = query(staged, f"{copy}'a{{40}}'")
    assert [r["File"] for r in loaded] == [f"redos/{NAME}"]
    assert query(staged, f"SELECT sum(x) AS s FROM {table}") == [{"s": 3}]


@pytest.mark.parametrize(
    "sql",
    [
        "LIST @~/redos/ PATTERN = '{p}'",
        "REMOVE @~/redos/ PATTERN = '{p}'",
        "COPY INTO {t} FROM @~/redos/ PATTERN = '{p}' FILE_FORMAT = (TYPE = CSV)",
        "SELECT * FROM @~/redos/ (FILE_FORMAT => 'CSV', PATTERN => '{p}') t",
        "SELECT * FROM LIST_STAGE(LOCATION => '@~/redos/', PATTERN => '{p}')",
        "SELECT * FROM INFER_SCHEMA(LOCATION => '@~/redos/', FILE_FORMAT => 'CSV', PATTERN => '{p}')",
    ],
)
def test_backreference_is_refused_in_every_statement(staged, unique_table, sql):
    table = unique_table("backref")
    execute(staged, f"CREATE TABLE {table} (x INTEGER)")
    with pytest.raises(dbapi.Error, match=re.escape(BACKREF_ERROR)):
        query(staged, sql.format(p="(a)\\1", t=table))
    assert [r["name"] for r in query(staged, "LIST @~/redos/")] == [f"redos/{NAME}"]  # REMOVE removed nothing
