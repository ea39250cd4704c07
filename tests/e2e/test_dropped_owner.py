"""What a dropped user owned passes to root, and a table stage's presigned URLs end with the table:
a re-created user or table of the same name never inherits the old one's objects or URLs."""

from __future__ import annotations

import re
from typing import Any

import adbc_driver_flightsql.dbapi as dbapi
import pytest

from flight.app import RunningServer
from tests.conftest import connect
from tests.e2e.stage_helpers import execute, presign, put, query
from tests.e2e.test_presign_generations import _http


def test_a_recreated_user_inherits_nothing_of_the_dropped_one(server: RunningServer, root_conn: Any) -> None:
    execute(root_conn, "CREATE USER heir IDENTIFIED BY 'pw-old'")
    execute(root_conn, "GRANT CREATE STAGE ON *.* TO heir")
    with connect(server, user="heir", password="pw-old") as old:
        execute(old, "CREATE STAGE heir_stage")
        execute(old, "CREATE FILE FORMAT heir_fmt TYPE = CSV")
        execute(old, "CREATE TABLE heir_table (a INTEGER)")
        assert put(old, "@%heir_table/a.csv", b"1\n") == 200
    execute(root_conn, "DROP USER heir")
    execute(root_conn, "CREATE USER heir IDENTIFIED BY 'pw-new'")
    execute(root_conn, "GRANT CREATE STAGE ON *.* TO heir")
    with connect(server, user="heir", password="pw-new") as new:
        with pytest.raises(dbapi.Error, match=r"Permission denied: only the owner of @heir_stage or root"):
            execute(new, "DROP STAGE heir_stage")
        with pytest.raises(dbapi.Error, match=r"Permission denied: only the owner of file format heir_fmt"):
            execute(new, "DROP FILE FORMAT heir_fmt")
        with pytest.raises(
            dbapi.Error,
            match=re.escape("Permission denied: SELECT on main.heir_table (table stage @%heir_table)"),
        ):
            query(new, "LIST @%heir_table")
    stages = {row["name"]: row for row in query(root_conn, "SHOW STAGES LIKE 'heir%'")}
    assert stages["heir_stage"]["creator"] == "root"
    assert [row["name"] for row in query(root_conn, "LIST @%heir_table")] == ["a.csv"]
    execute(root_conn, "DROP STAGE heir_stage")
    execute(root_conn, "DROP FILE FORMAT heir_fmt")
    execute(root_conn, "DROP TABLE heir_table")
    execute(root_conn, "DROP USER heir")


def test_table_stage_upload_url_dies_with_the_table(alice: Any) -> None:
    execute(alice, "CREATE TABLE url_t (a INTEGER)")
    url = presign(alice, "PRESIGN UPLOAD @%url_t/late.csv")["url"]
    execute(alice, "DROP TABLE url_t")
    execute(alice, "CREATE TABLE url_t (a INTEGER)")
    status, body = _http(url, "PUT", b"1\n")
    assert status == 403
    assert (
        body.decode().strip() == "URL revoked: stage @%main.url_t was dropped or replaced after it was issued"
    )
    assert query(alice, "LIST @%url_t") == []
    fresh = presign(alice, "PRESIGN UPLOAD @%url_t/new.csv")["url"]
    assert _http(fresh, "PUT", b"2\n")[0] == 200
    assert [row["name"] for row in query(alice, "LIST @%url_t")] == ["new.csv"]
    execute(alice, "DROP TABLE url_t")
