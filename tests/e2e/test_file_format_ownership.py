"""Named file formats: any user may use one, only its owner (creator) or root may replace or drop it."""

from __future__ import annotations

import re
import uuid
from typing import Any

import adbc_driver_manager.dbapi as dbapi
import pytest

from tests.e2e.stage_helpers import execute, put, query


def _fresh_name() -> str:
    return f"fmt_{uuid.uuid4().hex[:10]}"


def _shown(conn: Any, name: str) -> str | None:
    """The format's options as SHOW FILE FORMATS renders them (None when absent)."""
    rows = {r["name"]: r["format_options"] for r in query(conn, "SHOW FILE FORMATS")}
    return rows.get(name)


def _refused(conn: Any, sql: str, message: str) -> None:
    with pytest.raises(dbapi.Error, match=re.escape(message)) as err:
        execute(conn, sql)
    assert "Traceback" not in str(err.value)


@pytest.fixture
def roots_format(root_conn: Any) -> Any:
    name = _fresh_name()
    execute(root_conn, f"CREATE FILE FORMAT {name} TYPE = CSV FIELD_DELIMITER = ';' SKIP_HEADER = 1")
    options = _shown(root_conn, name)
    assert options is not None and "field_delimiter = ';'" in options
    yield name, options
    execute(root_conn, f"DROP FILE FORMAT IF EXISTS {name}")


def test_a_non_owner_cannot_drop_or_replace(root_conn, alice, roots_format):
    name, options = roots_format
    denied = f"Permission denied: only the owner of file format {name} or root may"
    _refused(alice, f"DROP FILE FORMAT {name}", f"{denied} drop it")
    _refused(alice, f"DROP FILE FORMAT IF EXISTS {name}", f"{denied} drop it")
    _refused(
        alice,
        f"CREATE OR REPLACE FILE FORMAT {name} TYPE = CSV FIELD_DELIMITER = '|'",
        f"{denied} replace it",
    )
    _refused(alice, f"CREATE FILE FORMAT {name} TYPE = TSV", f"File format already exists: {name}")
    execute(alice, f"CREATE FILE FORMAT IF NOT EXISTS {name} TYPE = TSV")
    assert _shown(root_conn, name) == options
    assert _shown(alice, name) == options


def test_everyone_may_use_a_format(root_conn, alice, roots_format, unique_table):
    name, _ = roots_format
    table = unique_table("ffuse")
    execute(alice, f"CREATE TABLE {table} (a INT, b VARCHAR)")
    put(alice, "@~/ffuse/semi.csv", b"a;b\n1;x\n2;y\n")
    rows = query(alice, f"COPY INTO {table} FROM @~/ffuse/ FILE_FORMAT = (FORMAT_NAME = '{name}')")
    assert [r["Rows_loaded"] for r in rows] == [2]
    assert query(alice, f"SELECT a, b FROM {table} ORDER BY a") == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]


def test_root_may_replace_and_drop_a_users_format(root_conn, alice):
    name = _fresh_name()
    execute(alice, f"CREATE FILE FORMAT {name} TYPE = CSV")
    execute(root_conn, f"CREATE OR REPLACE FILE FORMAT {name} TYPE = TSV")
    assert _shown(alice, name) == "type = TSV"
    execute(root_conn, f"DROP FILE FORMAT {name}")
    assert _shown(alice, name) is None


def test_an_owner_manages_their_own_format(root_conn, alice, bob):
    name = _fresh_name()
    execute(alice, f"CREATE FILE FORMAT {name} TYPE = CSV")
    execute(alice, f"CREATE OR REPLACE FILE FORMAT {name} TYPE = CSV SKIP_HEADER = 2")
    assert _shown(root_conn, name) == "type = CSV skip_header = 2"
    _refused(bob, f"DROP FILE FORMAT {name}", f"only the owner of file format {name} or root may drop it")
    execute(alice, f"DROP FILE FORMAT {name}")
    assert _shown(root_conn, name) is None
    # Once dropped the name is free for anyone.
    execute(bob, f"CREATE FILE FORMAT {name} TYPE = NDJSON")
    execute(bob, f"DROP FILE FORMAT {name}")
