"""Flight-side session state: one engine session per bearer token, prepared statements, pending results."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.core import Engine
from engine.errors import EngineError
from engine.results import Result
from engine.session import Prepared, Session
from flight.errors import ClientError


@dataclass
class PreparedStatement:
    prepared: Prepared
    params: list[Sequence[Any]] = field(default_factory=list)


@dataclass
class FlightSession:
    token_key: bytes
    user: str
    engine_session: Session
    last_used: float = field(default_factory=time.monotonic)
    prepared: dict[bytes, PreparedStatement] = field(default_factory=dict)
    transaction_id: bytes | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def statement(self, handle: bytes) -> PreparedStatement:
        try:
            return self.prepared[handle]
        except KeyError:
            raise ClientError("Unknown or closed prepared statement handle") from None

    def check_transaction(self, transaction_id: bytes | None) -> None:
        if transaction_id and transaction_id != self.transaction_id:
            raise ClientError("Unknown transaction id for this session")


@dataclass
class PendingResult:
    user: str
    result: Result
    deadline: float


class SessionRegistry:
    def __init__(self, engine: Engine, max_sessions: int, idle_seconds: int, result_ttl: int) -> None:
        self.engine = engine
        self.max_sessions = max_sessions
        self.idle_seconds = idle_seconds
        self.result_ttl = result_ttl
        self._lock = threading.Lock()
        self._sessions: dict[bytes, FlightSession] = {}
        self._results: dict[bytes, PendingResult] = {}

    # -- sessions ----------------------------------------------------------------------
    def get_or_open(self, token_key: bytes, user: str) -> FlightSession:
        with self._lock:
            fs = self._sessions.get(token_key)
            if fs is not None:
                fs.last_used = time.monotonic()
                return fs
            if len(self._sessions) >= self.max_sessions:
                raise EngineError(
                    f"Too many open sessions (limit {self.max_sessions}); close idle connections"
                )
        session = self.engine.open_session(user)
        with self._lock:
            fs = self._sessions.setdefault(token_key, FlightSession(token_key, user, session))
        if fs.engine_session is not session:
            session.close()
        return fs

    def close(self, token_key: bytes) -> None:
        with self._lock:
            fs = self._sessions.pop(token_key, None)
        if fs is not None:
            fs.prepared.clear()
            fs.engine_session.close()

    def close_user(self, user: str) -> None:
        with self._lock:
            keys = [k for k, v in self._sessions.items() if v.user == user]
        for k in keys:
            self.close(k)

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    # -- pending results -----------------------------------------------------------------
    def park(self, user: str, result: Result) -> bytes:
        handle = secrets.token_bytes(16)
        with self._lock:
            self._results[handle] = PendingResult(user, result, time.monotonic() + self.result_ttl)
        return handle

    def redeem(self, handle: bytes, user: str) -> Result:
        with self._lock:
            pending = self._results.get(handle)
            # Tickets are bound to the user; any session of that user may redeem (ADBC partitions).
            if pending is None or pending.user != user:
                raise ClientError("Unknown, expired or already fetched result ticket")
            del self._results[handle]
        return pending.result

    def drop_result(self, handle: bytes) -> bool:
        with self._lock:
            pending = self._results.pop(handle, None)
        if pending is not None:
            pending.result.close()
        return pending is not None

    # -- expiry --------------------------------------------------------------------------
    def reap(self) -> None:
        now = time.monotonic()
        with self._lock:
            stale = [h for h, p in self._results.items() if now > p.deadline]
            expired = [p for h in stale if (p := self._results.pop(h, None)) is not None]
            idle = [k for k, s in self._sessions.items() if now - s.last_used > self.idle_seconds]
        for p in expired:
            p.result.close()
        for k in idle:
            self.close(k)

    def close_all(self) -> None:
        with self._lock:
            results = list(self._results.values())
            self._results.clear()
            keys = list(self._sessions)
        for p in results:
            p.result.close()
        for k in keys:
            self.close(k)
