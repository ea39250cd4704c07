"""``stageflight serve --catalog``: bad URLs and an unreachable catalog are clear errors, no traceback,
and a password never shows (issue 14)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from flight.config import load_config
from tests.e2e.stage_helpers import query
from tests.lake.test_lake_nodes import _lake_missing
from tests.pg import PgCluster
from tests.serverproc import server_process


def _serve(tmp_path: Path, catalog: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flight.cli",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--port",
            "0",
            "--http-port",
            "-1",
            "--catalog",
            catalog,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "STAGEFLIGHT_ROOT_PASSWORD": "pw", **env},
    )


def test_a_password_in_the_catalog_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(SystemExit, match="must not contain a password: set PGPASSWORD") as caught:
        load_config(["--catalog", "postgresql://sf:hunter2-pw@127.0.0.1:5432/db"], {})
    assert "hunter2-pw" not in str(caught.value)
    with pytest.raises(SystemExit, match="must be a postgresql:// URL"):
        load_config([], {"STAGEFLIGHT_CATALOG": "sqlite:///x.db"})
    assert load_config(["--catalog", "postgresql://sf@db:5433/lake?schema=prod"], {}).catalog == (
        "postgresql://sf@db:5433/lake?schema=prod"
    )


def test_an_unreachable_catalog_stops_serve_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = _serve(tmp_path, f"postgresql://sf@127.0.0.1:{port}/stageflight", PGPASSWORD="s3cret-pg-pw")
    assert done.returncode == 1
    assert (
        f"stageflight: cannot start: Cannot reach the catalog postgresql://sf@127.0.0.1:{port}/"
        in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert "s3cret-pg-pw" not in done.stderr + done.stdout


def _init_lake(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base_env = {k: v for k, v in os.environ.items() if k != "STAGEFLIGHT_ROOT_PASSWORD"}
    return subprocess.run(
        [sys.executable, "-m", "flight.cli", "init-lake", "--data-dir", str(tmp_path / "init"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base_env, **env},
    )


def test_init_lake_needs_lake_mode(tmp_path: Path) -> None:
    done = _init_lake(tmp_path)
    assert done.returncode == 2
    assert "stageflight: init-lake needs --catalog postgresql://... and --tables lake" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(_lake_missing() is not None, reason=str(_lake_missing()))
def test_init_lake_creates_the_lake_and_root_once_and_nodes_then_serve_it(
    pg_cluster: PgCluster, pg_url: str, tmp_path: Path
) -> None:
    shared = str(tmp_path / "shared")
    args = ("--catalog", pg_url, "--tables", "lake", "--storage-root", shared)
    first = _init_lake(tmp_path, *args)
    assert first.returncode == 0, first.stderr
    schema = pg_url.rsplit("schema=", 1)[1]
    assert first.stdout.splitlines()[:5] == [
        "stageflight: lake ready",
        f"  catalog:        {pg_url}",
        f"  catalog tables: schema {schema}",
        f"  lake metadata:  schema {schema}_lake",
        f"  lake data:      {shared}/lake/",
    ]
    [password] = re.findall(
        r"root password \(generated, shown once; only a hash is stored\): (\S+)", first.stdout
    )
    with pg_cluster.admin() as pg:
        found = pg.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = 'ducklake_snapshot'",
            [f"{schema}_lake"],
        ).fetchone()
    assert found == (1,)
    again = _init_lake(tmp_path, *args)
    assert again.returncode == 0, again.stderr
    assert "root password" not in again.stdout
    assert "  user:           root (password from STAGEFLIGHT_ROOT_PASSWORD or set earlier)" in again.stdout
    with server_process(tmp_path / "node", *args, root_password=password) as node:
        conn = flightsql.connect(
            node.uri, db_kwargs={"username": "root", "password": password}, autocommit=True
        )
        with conn:
            assert query(conn, "SELECT current_user AS u") == [{"u": "root"}]
