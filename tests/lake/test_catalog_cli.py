"""``stageflight serve --catalog``: bad URLs and an unreachable catalog are clear errors, no traceback,
and a password never shows (issue 14)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flight.config import load_config


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
