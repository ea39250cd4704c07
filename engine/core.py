"""The engine: one locked DuckDB database, its users, and the sessions that run statements on it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import duckdb

from engine.config import EngineConfig
from engine.database import Database
from engine.session import Session
from engine.users import UserDirectory


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.db = Database(config)
        self.users = UserDirectory(self.db)
        self._credential_listeners: list[Callable[[str, bool], None]] = []
        self._meta_lock = threading.Lock()
        self._meta_cursor = self.db.cursor()

    def open_session(self, user: str) -> Session:
        return Session(self, user)

    def on_password_changed(self, name: str) -> None:
        for listener in self._credential_listeners:
            listener(name, False)

    def add_credentials_listener(self, listener: Callable[[str, bool], None]) -> None:
        """``listener(user, dropped)`` runs when a user's password changes or the user is dropped."""
        self._credential_listeners.append(listener)
        self.users.on_drop(lambda name: listener(name, True))

    @contextmanager
    def metadata_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for catalog metadata commands, apart from any session's busy cursor."""
        with self._meta_lock:
            yield self._meta_cursor

    def close(self) -> None:
        self.db.close()
