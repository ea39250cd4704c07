"""The Rust arrow-flight Flight SQL client for Node (`@lakehouse-rs/flight-sql-client`, npm) against
the real server, driven through tests/clients/node/probe.mjs
(installed by `npm install --prefix tests/clients/node --no-save`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT_PASSWORD

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")

if NODE is None:
    pytest.skip(
        "node not found on PATH: install Node 20 to run the Node client tests", allow_module_level=True
    )
if not (NODE_DIR / "node_modules" / "@lakehouse-rs" / "flight-sql-client").is_dir():
    pytest.skip(
        "@lakehouse-rs/flight-sql-client not installed: "
        "run `npm install --prefix tests/clients/node --no-save`",
        allow_module_level=True,
    )


def probe(
    server: Any, *steps: str, user: str = "root", password: str = ROOT_PASSWORD
) -> tuple[list[dict], str]:
    args = [NODE, "probe.mjs", "--port", str(server.port), "--user", user, "--password", password, *steps]
    env = {**os.environ, "CONNECT_TIMEOUT_MS": "5000"}
    done = subprocess.run(
        args, cwd=NODE_DIR, capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()], done.stderr


def test_select_returns_typed_columns_and_values(server):
    [result], _ = probe(
        server,
        "query:SELECT 1::INTEGER AS i, 'a' AS s, 2.5::DOUBLE AS d, DATE '2024-01-02' AS dt, "
        "1.25::DECIMAL(18,3) AS dec, TRUE AS b, NULL::INTEGER AS n, 12345678901234::BIGINT AS big",
    )
    assert result["ok"], result
    assert result["columns"] == [
        {"name": "i", "type": "Int32"},
        {"name": "s", "type": "Utf8"},
        {"name": "d", "type": "Float64"},
        {"name": "dt", "type": "Date32<DAY>"},
        {"name": "dec", "type": "Decimal[18e+3]"},
        {"name": "b", "type": "Bool"},
        {"name": "n", "type": "Int32"},
        {"name": "big", "type": "Int64"},
    ]
    row = result["rows"][0]
    assert {k: row[k] for k in ("i", "s", "d", "dt", "b", "n", "big")} == {
        "i": 1,
        "s": "a",
        "d": 2.5,
        "dt": "2024-01-02T00:00:00.000Z",
        "b": True,
        "n": None,
        "big": 12345678901234,
    }
    assert row["dec"][0] == 1250  # the unscaled value, low 32 bits first


def test_ddl_dml_and_rows_round_trip(server, unique_table):
    table = unique_table("node")
    results, _ = probe(
        server,
        f"query:CREATE TABLE {table} (id INTEGER, name VARCHAR)",
        f"query:INSERT INTO {table} VALUES (1, 'a'), (2, 'b')",
        f"query:SELECT id, name FROM {table} ORDER BY id",
    )
    assert [r["ok"] for r in results] == [True, True, True], results
    assert results[1]["rows"] == [{"Count": 2}]
    assert results[2]["rows"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


def test_statements_without_a_table_schema_run_through_prepare(server, unique_table):
    # this client prepares every query: SHOW TABLES must report a dataset schema (issue 16 item 3)
    table = unique_table("node_show")
    results, _ = probe(server, f"query:CREATE TABLE {table} (id INTEGER)", "query:SHOW TABLES")
    assert results[1]["ok"], results
    assert results[1]["columns"] == [{"name": "name", "type": "Utf8"}]
    assert {"name": table} in results[1]["rows"]


def test_metadata_calls(server, unique_table):
    table = unique_table("node_meta")
    results, _ = probe(
        server, f"query:CREATE TABLE {table} (id INTEGER)", "catalogs", "schemas", f"tables:{table}"
    )
    _, catalogs, schemas, tables = results
    assert catalogs["rows"] == [{"catalog_name": "stageflight"}]
    assert schemas["rows"] == [{"catalog_name": "stageflight", "db_schema_name": "main"}]
    assert tables["rows"] == [
        {"catalog_name": "stageflight", "db_schema_name": "main", "table_name": table, "table_type": "TABLE"}
    ]


def test_errors_fail_the_step_and_the_session_keeps_serving(server):
    # the client wraps every server error as "failed to prepare statement" and drops our message
    results, _ = probe(
        server, "query:SELEC 1", "query:SELECT * FROM nope_missing", "query:SELECT 42 AS answer"
    )
    assert [(r["ok"], r.get("error")) for r in results[:2]] == [
        (False, "failed to prepare statement"),
        (False, "failed to prepare statement"),
    ]
    assert results[2]["rows"] == [{"answer": 42}]


def test_a_made_user_sees_its_name_and_a_wrong_password_is_refused(server, make_user):
    name, password = make_user()
    [result], _ = probe(server, "query:SELECT current_user AS u", user=name, password=password)
    assert result["rows"] == [{"u": name}]
    [refused], stderr = probe(server, "query:SELECT 1", user=name, password="wrong")
    assert refused["step"] == "connect" and not refused["ok"]
    assert "Invalid user name or password" in stderr  # printed by the client's own panic
