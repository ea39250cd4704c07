"""Fixtures for end-to-end stage and COPY tests: fresh SQL users connected over ADBC."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flight.app import RunningServer
from tests.conftest import connect


def _user_connection(server: RunningServer, make_user: Callable[[], tuple[str, str]]) -> Iterator[Any]:
    name, password = make_user()
    conn = connect(server, user=name, password=password)
    conn.user_name = name  # type: ignore[attr-defined]
    yield conn
    conn.close()


@pytest.fixture
def alice(server: RunningServer, make_user: Callable[[], tuple[str, str]]) -> Iterator[Any]:
    yield from _user_connection(server, make_user)


@pytest.fixture
def bob(server: RunningServer, make_user: Callable[[], tuple[str, str]]) -> Iterator[Any]:
    yield from _user_connection(server, make_user)


@pytest.fixture
def user(server: RunningServer, make_user: Callable[[], tuple[str, str]]) -> Iterator[Any]:
    yield from _user_connection(server, make_user)
