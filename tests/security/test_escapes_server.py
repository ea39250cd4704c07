"""The adversarial corpus against the real server over ADBC: every escape attempt is refused."""

from __future__ import annotations

import adbc_driver_manager.dbapi as dbapi
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


@pytest.mark.parametrize(
    "sql, fragment", ESCAPE_ATTEMPTS, ids=[f"escape{i}" for i in range(len(ESCAPE_ATTEMPTS))]
)
def test_escape_attempt_is_refused(attacker, sql, fragment):
    with pytest.raises(dbapi.Error) as err, attacker.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()
    message = str(err.value)
    assert "Traceback" not in message
    assert "/etc/passwd" not in message.split("Detail:")[-1] or fragment in message


@pytest.mark.parametrize("sql", ALLOWED_QUERIES, ids=[f"allowed{i}" for i in range(len(ALLOWED_QUERIES))])
def test_legitimate_queries_still_work(attacker, sql):
    with attacker.cursor() as cur:
        cur.execute(sql)
        try:
            cur.fetchall()
        except dbapi.Error:
            pass  # statements without a result set


def test_server_still_serves_after_the_corpus(attacker):
    with attacker.cursor() as cur:
        cur.execute("SELECT 40 + 2")
        assert cur.fetchall() == [(42,)]


def test_host_file_never_read_through_server(server, attacker, tmp_path):
    secret = tmp_path / "host_secret.csv"
    secret.write_text("TOP-SECRET-VALUE\n")
    attempts = [
        f"SELECT * FROM read_csv('{secret}')",
        f"SELECT * FROM '{secret}'",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT content FROM read_blob('{server.engine.config.database_path}')",
        f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
        f"ATTACH '{tmp_path / 'x.duckdb'}' AS x",
    ]
    for sql in attempts:
        with pytest.raises(dbapi.Error) as err, attacker.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
        assert "TOP-SECRET-VALUE" not in str(err.value)
    assert not (tmp_path / "out.csv").exists()
    assert not (tmp_path / "x.duckdb").exists()
