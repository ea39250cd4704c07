"""Fixtures the security tests share: a fresh non-root user's connection, and a raw root client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flight.app import RunningServer
from tests.conftest import ROOT_PASSWORD, connect
from tests.flight.rawclient import RawClient


@pytest.fixture
def user_conn(server: RunningServer, make_user: Callable[[], tuple[str, str]]) -> Iterator[Any]:
    name, password = make_user()
    conn = connect(server, user=name, password=password)
    yield conn
    conn.close()


@pytest.fixture
def raw_root(server: RunningServer) -> Iterator[RawClient]:
    raw = RawClient(server.uri, "root", ROOT_PASSWORD)
    yield raw
    raw.close()
