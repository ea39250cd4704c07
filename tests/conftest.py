"""Fixtures: the real server on a loopback port with a temporary data dir, and real ADBC clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pytest

from flight import app
from flight.config import ServerConfig

ROOT_PASSWORD = "root-test-pw"


def _start(data_dir: Path, **overrides: object) -> app.RunningServer:
    config = ServerConfig(
        data_dir=data_dir, host="127.0.0.1", port=0, http_port=0, root_password=ROOT_PASSWORD, **overrides
    )  # type: ignore[arg-type]
    return app.start(config)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[app.RunningServer]:
    running = _start(tmp_path_factory.mktemp("server"))
    yield running
    running.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., app.RunningServer]]:
    """Start a private server (for tests that change settings or restart)."""
    started: list[app.RunningServer] = []

    def start(**overrides: object) -> app.RunningServer:
        running = _start(tmp_path / f"srv{len(started)}", **overrides)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def connect(
    running: app.RunningServer,
    user: str = "root",
    password: str = ROOT_PASSWORD,
    autocommit: bool = True,
    **db_kwargs: str,
) -> flightsql.Connection:
    return flightsql.connect(
        running.uri,
        db_kwargs={"username": user, "password": password, **db_kwargs},
        autocommit=autocommit,
    )


@pytest.fixture
def root_conn(server: app.RunningServer) -> Iterator[flightsql.Connection]:
    conn = connect(server)
    yield conn
    conn.close()


_user_counter = [0]


@pytest.fixture
def make_user(server: app.RunningServer) -> Callable[[], tuple[str, str]]:
    """Create a fresh SQL user on the shared server; returns (name, password)."""

    def make() -> tuple[str, str]:
        _user_counter[0] += 1
        name, password = f"user{_user_counter[0]}", f"pw-{_user_counter[0]}-secret"
        with connect(server) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER {name} IDENTIFIED BY '{password}'")
        return name, password

    return make


@pytest.fixture
def unique_table() -> Callable[[str], str]:
    counter = [0]

    def make(prefix: str = "t") -> str:
        counter[0] += 1
        import uuid

        return f"{prefix}_{uuid.uuid4().hex[:8]}_{counter[0]}"

    return make


# The loopback S3 API server (moto) for external stages and an S3 storage root.
from tests.s3 import moto_s3, moto_s3_auth  # noqa: E402, F401
