"""Flight-side session state: one engine session per bearer token, prepared statements, pending results.

Limits (issue 11): a user may hold at most ``per_user`` sessions, so one user cannot take every
slot; root is exempt and, when every slot is taken, gets one by closing the longest-idle session
of another user that has nothing running. A session no statement has used (e.g. the one ADBC
opens with BeginTransaction on connect) holds a DuckDB connection for nothing: after
``unused_seconds`` it is put to sleep (connection closed, transaction id, catalog and schema
remembered) and woken, the same to the client, by its next call. A session is never closed by
expiry while a call runs in it or one of its results is being streamed.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from engine import ROOT_USER, Engine, EngineError, Prepared, Result, Session
from flight.auth import Activity
from flight.errors import ClientError

log = logging.getLogger("stageflight")
# Results dropped past the unread limit, remembered to explain a later DoGet; bounded.
_REMEMBER_DROPPED = 10_000


@dataclass(frozen=True)
class SessionLimits:
    max_sessions: int = 512
    per_user: int | None = None  # None: max(4, max_sessions // 4)
    idle_seconds: int = 3600
    unused_seconds: int = 60
    result_ttl: int = 300
    unread_results_per_user: int = 16

    @property
    def sessions_per_user(self) -> int:
        return self.per_user if self.per_user is not None else max(4, self.max_sessions // 4)

    @property
    def root_reserve(self) -> int:
        """Slots only root may take, so root normally gets in without closing anyone's session."""
        return self.max_sessions // 32


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
    # Kept by the registry under its lock: calls running now, results open on the connection.
    running: int = 0
    open_streams: int = 0
    used: bool = False  # a statement ran (it may have left state: SET, temporary tables)
    worked_in: bytes | None = None  # the Flight transaction id the last statement ran in

    @property
    def restful(self) -> bool:
        """Closing it loses nothing we cannot restore: no statement ran, nothing is prepared."""
        return not (self.used or self.prepared)

    @property
    def transaction_has_work(self) -> bool:
        """An open transaction that ran a statement (ADBC begins an empty one after each commit)."""
        if not self.engine_session.in_transaction:
            return False
        return self.transaction_id is None or self.transaction_id == self.worked_in

    @property
    def busy(self) -> bool:
        return self.running > 0 or self.open_streams > 0

    def statement(self, handle: bytes) -> PreparedStatement:
        try:
            return self.prepared[handle]
        except KeyError:
            raise ClientError("Unknown or closed prepared statement handle") from None

    def check_transaction(self, transaction_id: bytes | None) -> None:
        if transaction_id and transaction_id != self.transaction_id:
            raise ClientError("Unknown transaction id for this session")


@dataclass
class _Sleeping:
    """What a never-used session needs to wake up as it was."""

    user: str
    transaction_id: bytes | None
    catalog: str | None = None  # None: not known (stays on the default)
    schema: str | None = None


@dataclass
class DeferredQuery:
    """A query GetFlightInfo announced (schema known) that runs when its DoGet comes.

    There a client's cancel reaches it: JDBC cancels the DoGet stream, never a GetFlightInfo call.
    Only reads are deferred; a statement with effects runs in GetFlightInfo, fetched or not.
    """

    fs: FlightSession
    prepared: Prepared

    def close(self) -> None:
        """Never run: nothing to free."""


@dataclass
class PendingResult:
    user: str
    result: Result | DeferredQuery
    deadline: float


class SessionRegistry:
    def __init__(
        self,
        engine: Engine,
        max_sessions: int = 512,
        idle_seconds: int = 3600,
        result_ttl: int = 300,
        *,
        limits: SessionLimits | None = None,
    ) -> None:
        self.engine = engine
        self.limits = limits or SessionLimits(max_sessions, idle_seconds=idle_seconds, result_ttl=result_ttl)
        self.max_sessions = self.limits.max_sessions
        self.idle_seconds = self.limits.idle_seconds
        self.result_ttl = self.limits.result_ttl
        self._lock = threading.Lock()
        self._sessions: dict[bytes, FlightSession] = {}
        self._sleeping: dict[bytes, _Sleeping] = {}
        self._results: dict[bytes, PendingResult] = {}
        self._dropped: OrderedDict[bytes, str] = OrderedDict()  # handle -> user, for the message

    # -- sessions ----------------------------------------------------------------------
    def get_or_open(self, token_key: bytes, user: str) -> FlightSession:
        with self._lock:
            fs = self._sessions.get(token_key)
            if fs is not None:
                fs.last_used = time.monotonic()
                return fs
            self._make_room(user, evict=False)  # refuse early, before opening a connection
        session = self.engine.open_session(user)
        evicted: list[FlightSession] = []
        with self._lock:
            fs = self._sessions.get(token_key)
            if fs is None:
                try:
                    evicted = self._make_room(user, evict=True)
                except EngineError:
                    session.close()
                    raise
                fs = self._sessions[token_key] = FlightSession(token_key, user, session)
                sleeping = self._sleeping.pop(token_key, None)
            else:
                sleeping = None
        for victim in evicted:
            self._remember_place(victim)
            self._close_session(victim)
        if fs.engine_session is not session:
            session.close()
        elif sleeping is not None:
            self._wake(fs, sleeping)
        return fs

    def _make_room(self, user: str, *, evict: bool) -> list[FlightSession]:
        """Under the lock: refuse a new session for ``user``, or (``evict``) close one so root fits."""
        total = len(self._sessions)
        if user == ROOT_USER:
            if total < self.max_sessions or not evict:
                return []
            victim = self._eviction_candidate()
            if victim is None:
                raise EngineError(self._full_message())
            del self._sessions[victim.token_key]
            if victim.restful:  # nothing to lose: it resumes on its next call, as if asleep
                self._sleeping[victim.token_key] = _Sleeping(victim.user, victim.transaction_id)
            log.warning("closing an idle session of %s to let root in (%d sessions open)", victim.user, total)
            return [victim]
        per_user = self.limits.sessions_per_user
        if sum(1 for s in self._sessions.values() if s.user == user) >= per_user:
            raise EngineError(f"Too many sessions for user {user} (limit {per_user}); close idle connections")
        if total >= self.max_sessions - self.limits.root_reserve:
            raise EngineError(self._full_message())
        return []

    def _full_message(self) -> str:
        return f"Too many open sessions (limit {self.max_sessions}); close idle connections"

    def _eviction_candidate(self) -> FlightSession | None:
        # Those that can sleep first, then those without open work; the longest idle of each.
        idle = [s for s in self._sessions.values() if s.user != ROOT_USER and not s.busy]
        idle.sort(key=lambda s: (not s.restful, s.transaction_has_work, s.last_used))
        return idle[0] if idle else None

    def _wake(self, fs: FlightSession, sleeping: _Sleeping) -> None:
        try:
            if sleeping.catalog is not None:
                fs.engine_session.use(sleeping.catalog, sleeping.schema)
        except EngineError:  # the schema may have been dropped meanwhile: stay on the default one
            log.info("a woken session could not return to %s.%s", sleeping.catalog, sleeping.schema)
        if sleeping.transaction_id is not None:
            fs.engine_session.begin()
            fs.transaction_id = sleeping.transaction_id

    @contextmanager
    def call(self, fs: FlightSession, *, work: bool = True) -> Iterator[None]:
        """Marks a statement running in ``fs``: expiry leaves the session alone until it ends.

        ``work=False``: a read run ahead at prepare time; it does not make the open transaction
        one with work in it (that lets an expired token commit, see TokenStore).
        """
        with self._lock:
            fs.running += 1
            fs.used = True
            if work:
                fs.worked_in = fs.transaction_id
            fs.last_used = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                fs.running -= 1
                fs.last_used = time.monotonic()

    def activity(self, token_key: bytes) -> Activity | None:
        with self._lock:
            fs = self._sessions.get(token_key)
            if fs is None:
                return None
            return Activity(fs.busy, fs.transaction_has_work, fs.last_used)

    def close(self, token_key: bytes) -> None:
        with self._lock:
            fs = self._sessions.pop(token_key, None)
            self._sleeping.pop(token_key, None)
        if fs is not None:
            self._close_session(fs)

    @staticmethod
    def _close_session(fs: FlightSession) -> None:
        fs.prepared.clear()
        fs.engine_session.close()

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def open_streams(self) -> int:
        """Results being streamed (read at scrape time for /metrics)."""
        with self._lock:
            return sum(fs.open_streams for fs in self._sessions.values())

    # -- pending results -----------------------------------------------------------------
    def park(self, user: str, result: Result | DeferredQuery, session: FlightSession | None = None) -> bytes:
        """Keep ``result`` for DoGet. Past the user's limit of unread results the oldest is dropped.

        An unfetched result holds its read-ahead batches and, when large, DuckDB's streaming state,
        outside DuckDB's memory limit. Dropping (rather than refusing new queries) suits ADBC, which
        leaves a result unread when a cursor runs its next query without fetching; a client that
        does come back for a dropped result is told why it is gone.
        """
        handle = secrets.token_bytes(16)
        if session is not None and isinstance(result, Result) and result.stream is not None:
            self.track_stream(session, result)
        limit = self.limits.unread_results_per_user
        with self._lock:
            waiting = sorted((p.deadline, h) for h, p in self._results.items() if p.user == user)
            oldest = [h for _, h in waiting[: max(0, len(waiting) - limit + 1)]]
            dropped = [self._results.pop(h) for h in oldest]
            for h in oldest:
                self._dropped[h] = user
            while len(self._dropped) > _REMEMBER_DROPPED:
                self._dropped.popitem(last=False)
            self._results[handle] = PendingResult(user, result, time.monotonic() + self.result_ttl)
        for p in dropped:
            p.result.close()
        return handle

    def track_stream(self, fs: FlightSession, result: Result) -> None:
        """A streamed result keeps the session busy (and alive) until it is read or dropped."""
        release = result.on_close

        def closed() -> None:
            if release is not None:
                release()
            with self._lock:
                fs.open_streams -= 1
                fs.last_used = time.monotonic()

        with self._lock:
            fs.open_streams += 1
        result.on_close = closed

    def redeem(self, handle: bytes, user: str) -> Result | DeferredQuery:
        with self._lock:
            pending = self._results.get(handle)
            # Tickets are bound to the user; any session of that user may redeem (ADBC partitions).
            if pending is None or pending.user != user:
                if self._dropped.get(handle) == user:
                    limit = self.limits.unread_results_per_user
                    raise ClientError(
                        f"Too many unread results: this one was dropped unread (limit {limit}); "
                        "fetch or close earlier results before running more queries"
                    )
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
            idle_keys = [
                k for k, s in self._sessions.items() if not s.busy and now - s.last_used > self.idle_seconds
            ]
            idle = [self._sessions.pop(k) for k in idle_keys]
            unused = [
                s
                for s in self._sessions.values()
                if not s.busy and s.restful and now - s.last_used > self.limits.unused_seconds
            ]
        for p in expired:
            p.result.close()
        for fs in idle:
            self._close_session(fs)
        for s in unused:
            self._put_to_sleep(s)

    def _remember_place(self, fs: FlightSession) -> None:
        """Fill in the catalog and schema of an evicted session that sleeps (before it closes)."""
        with self._lock:
            sleeping = self._sleeping.get(fs.token_key)
        if sleeping is None:
            return
        try:
            sleeping.catalog, sleeping.schema = fs.engine_session.current_catalog_and_schema()
        except EngineError:
            pass

    def _put_to_sleep(self, fs: FlightSession) -> None:
        try:
            catalog, schema = fs.engine_session.current_catalog_and_schema()
        except EngineError:
            return  # busy after all (a call started meanwhile): try again next time
        with self._lock:
            # A call may have started since the reaper looked: then the session is in use.
            in_use = fs.busy or not fs.restful
            fresh = time.monotonic() - fs.last_used <= self.limits.unused_seconds
            if self._sessions.get(fs.token_key) is not fs or in_use or fresh:
                return
            del self._sessions[fs.token_key]
            self._sleeping[fs.token_key] = _Sleeping(fs.user, fs.transaction_id, catalog, schema)
        self._close_session(fs)

    def close_all(self) -> None:
        with self._lock:
            results = list(self._results.values())
            self._results.clear()
            keys = list(self._sessions)
            self._sleeping.clear()
        for p in results:
            p.result.close()
        for k in keys:
            self.close(k)
