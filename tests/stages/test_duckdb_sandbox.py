"""open_locked opens a database whose WAL DuckDB 1.5 cannot replay on its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from stages.duckdb_sandbox import open_locked

# A process that dies without a checkpoint after an ALTER of a table with a now() DEFAULT (what the
# server's first start does to load_history and users): the WAL holds the ALTER.
_CRASH = """
import os, sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE t (a INT, created TIMESTAMPTZ NOT NULL DEFAULT now())")
con.execute("ALTER TABLE t ADD COLUMN IF NOT EXISTS b VARCHAR")
con.execute("INSERT INTO t (a, b) VALUES (1, 'one')")
os._exit(0)
"""


def test_opens_after_a_crash_with_an_alter_in_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "db.duckdb"
    subprocess.run([sys.executable, "-c", _CRASH, str(path)], check=True)
    assert path.with_name("db.duckdb.wal").exists()
    con = open_locked(str(path))
    try:
        assert con.execute("SELECT a, b, created IS NOT NULL FROM t").fetchall() == [(1, "one", True)]
        con.execute("INSERT INTO t (a) VALUES (2)")  # the DEFAULT still works
        assert con.execute("SELECT count(*) FROM t WHERE created IS NOT NULL").fetchall() == [(2,)]
        # still locked down after the recovery
        with pytest.raises(duckdb.Error, match="disabled"):
            con.execute(f"SELECT * FROM read_csv('{tmp_path / 'x.csv'}')")
    finally:
        con.close()


def test_other_open_errors_are_raised(tmp_path: Path) -> None:
    path = tmp_path / "not-a-db.duckdb"
    path.write_bytes(b"not a duckdb file at all" * 400)
    with pytest.raises(duckdb.Error, match="not a valid DuckDB database file"):
        open_locked(str(path))
