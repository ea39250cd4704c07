"""The adversarial corpus against the real server over ADBC: every escape attempt is refused."""

from __future__ import annotations

import re

import adbc_driver_manager.dbapi as dbapi
import duckdb
import pytest

from tests.conftest import connect
from tests.security.escape_corpus import ALLOWED_QUERIES, ESCAPE_ATTEMPTS


@pytest.fixture(scope="module")
def attacker(server):
    with connect(server) as setup, setup.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS mallory IDENTIFIED BY 'mallory-pw'")
    conn = connect(server, user="mallory", password="mallory-pw")
    yield conn
    conn.close()


def test_corpus_is_large_enough():
    assert len(ESCAPE_ATTEMPTS) >= 40


# What the server says when the text reaches it through ADBC differs from the guard's own message for
# these: the C driver cuts the text at a NUL (the server sees only the cut form, refused for what it
# is), and it refuses an empty query itself before sending it.
_OVER_ADBC = {
    "SELECT * FROM read_text('/etc/passwd\x00.csv')": "Cannot read statement: Error tokenizing",
    "ATTACH ':memory:' AS m\x00; SELECT 1": "Statement ATTACH is not allowed",
    "": "must call SetSqlQuery before Prepare",
}


@pytest.mark.parametrize(
    "sql, fragment", ESCAPE_ATTEMPTS, ids=[f"escape{i}" for i in range(len(ESCAPE_ATTEMPTS))]
)
def test_escape_attempt_is_refused(attacker, sql, fragment):
    expected = _OVER_ADBC.get(sql, fragment)
    with pytest.raises(dbapi.Error, match=re.escape(expected)) as err, attacker.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()
    assert "Traceback" not in str(err.value)


@pytest.mark.parametrize("sql", ALLOWED_QUERIES, ids=[f"allowed{i}" for i in range(len(ALLOWED_QUERIES))])
def test_legitimate_queries_still_work(attacker, sql):
    with attacker.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    if "information_schema" in sql or sql.startswith("SHOW"):
        # The catalog a user sees is filtered (and shared with other tests): only its shape is fixed.
        assert all(isinstance(name, str) for row in rows for name in row)
    else:
        # Self-contained queries: the server gives what plain DuckDB gives.
        assert rows == duckdb.connect().execute(sql).fetchall()


def test_server_still_serves_after_the_corpus(attacker):
    with attacker.cursor() as cur:
        cur.execute("SELECT 40 + 2")
        assert cur.fetchall() == [(42,)]


def test_host_file_never_read_through_server(server, attacker, tmp_path):
    secret = tmp_path / "host_secret.csv"
    secret.write_text("TOP-SECRET-VALUE\n")
    database = server.engine.config.database_path
    attempts = [
        (f"SELECT * FROM read_csv('{secret}')", "Function read_csv is not allowed: files are reached only"),
        (f"SELECT * FROM '{secret}'", "host_secret.csv' is not a plain identifier"),
        (f"SELECT * FROM read_text('{secret}')", "Function read_text is not allowed"),
        (f"SELECT content FROM read_blob('{database}')", "Function read_blob is not allowed"),
        (f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'", "Statement COPY is not allowed"),
        (f"ATTACH '{tmp_path / 'x.duckdb'}' AS x", "Statement ATTACH is not allowed"),
    ]
    for sql, fragment in attempts:
        with pytest.raises(dbapi.Error, match=re.escape(fragment)) as err, attacker.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
        assert "TOP-SECRET-VALUE" not in str(err.value)
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "x.duckdb").exists()
