"""The query log: the statements now running and the last ones that ended, in memory only.

Every statement a session runs (``Session.run_prepared``) is one entry, from planning to the
result it hands back (a streamed result's later batches are not counted in its time). SHOW
PROCESSLIST lists the running entries, ``QUERY_HISTORY()`` the recent ones, and KILL QUERY
interrupts the session cursor of a running one (engine.statements.processes). A restart forgets
the log.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.errors import ObjectNotFound, QueryCancelled
from engine.results import Result

KEEP_ENDED = 1000  # ended statements kept (every running one is kept)
MAX_TEXT_CHARS = 10_000  # a longer text is kept cut to this, with "..."
KILL_WAIT_SECONDS = 2.0  # KILL QUERY waits this long for the statement to stop
KILL_RETRY_SECONDS = 0.05  # and interrupts again this often (an early interrupt may be lost)

RUNNING, FINISHED, FAILED, CANCELLED = "running", "finished", "failed", "cancelled"
# A statement that may carry a secret (a password, stage credentials) is kept with every quoted
# string replaced: root reads every user's statements, and nobody reads a password back.
_SECRET_WORDS = re.compile(
    r"\b(IDENTIFIED|PASSWORD|CREDENTIALS|CONNECTION|SECRET\w*|\w*ACCESS_KEY\w*|\w*TOKEN\w*|\w*KEY_ID)\b",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"'(?:[^']|'')*'")
REDACTED = "'***'"


def logged_text(text: str) -> str:
    """The text the log keeps: secrets redacted, cut to :data:`MAX_TEXT_CHARS`."""
    if _SECRET_WORDS.search(text):
        text = _QUOTED.sub(REDACTED, text)
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + "..."


@dataclass
class QueryEntry:
    id: int
    user: str
    text: str
    started_on: datetime
    interrupt: Callable[[], None] = field(repr=False)
    state: str = RUNNING
    rows: int | None = None
    error: str | None = None
    ended_on: datetime | None = None
    _started: float = field(default_factory=time.monotonic, repr=False)
    _ended: float | None = field(default=None, repr=False)
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def seconds(self) -> float:
        """How long it ran, or has been running."""
        end = self._ended if self._ended is not None else time.monotonic()
        return round(end - self._started, 3)


def _result_rows(result: Result) -> int | None:
    if result.is_update:
        return result.rowcount if result.rowcount >= 0 else None
    if result.stream is None and result.table is not None:
        return int(result.table.num_rows)
    return None  # streamed: the rows are counted by nobody


class QueryLog:
    def __init__(self, keep: int = KEEP_ENDED) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._running: dict[int, QueryEntry] = {}
        self._ended: deque[QueryEntry] = deque(maxlen=keep)

    def run(self, user: str, text: str, interrupt: Callable[[], None], work: Callable[[], Result]) -> Result:
        """Run one statement as a log entry; ``interrupt`` stops it (the session's cursor)."""
        text = logged_text(text)
        with self._lock:
            entry = QueryEntry(next(self._ids), user, text, datetime.now(UTC), interrupt)
            self._running[entry.id] = entry
        try:
            result = work()
        except QueryCancelled as exc:
            self._end(entry, CANCELLED, None, str(exc))
            raise
        except BaseException as exc:
            self._end(entry, FAILED, None, str(exc) or type(exc).__name__)
            raise
        self._end(entry, FINISHED, _result_rows(result), None)
        return result

    def failed(self, user: str, text: str, error: BaseException) -> None:
        """A statement refused before it ran (when it was prepared: a missing table, a typo)."""
        with self._lock:
            entry = QueryEntry(next(self._ids), user, logged_text(text), datetime.now(UTC), lambda: None)
        self._end(entry, FAILED, None, str(error) or type(error).__name__)

    def _end(self, entry: QueryEntry, state: str, rows: int | None, error: str | None) -> None:
        with self._lock:
            entry.state, entry.rows, entry.error = state, rows, error
            entry._ended, entry.ended_on = time.monotonic(), datetime.now(UTC)
            self._running.pop(entry.id, None)
            self._ended.append(entry)
        entry.done.set()

    def running(self, user: str, sees_all: bool) -> list[QueryEntry]:
        """The running statements the caller may see (its own; all for an admin), oldest first."""
        with self._lock:
            return [e for e in self._running.values() if sees_all or e.user == user]

    def recent(self, user: str, sees_all: bool) -> list[QueryEntry]:
        """Running and ended statements the caller may see, newest first."""
        with self._lock:
            entries = [*self._ended, *self._running.values()]
        entries.sort(key=lambda e: e.id, reverse=True)
        return [e for e in entries if sees_all or e.user == user]

    def kill(self, query_id: int, user: str, sees_all: bool) -> QueryEntry:
        """Interrupt a running statement of the caller's (any, for an admin) and wait for it to stop.

        Raises:
            ObjectNotFound: no such statement is running, or it is another user's.
        """
        with self._lock:
            entry = self._running.get(query_id)
            if entry is None or not (sees_all or entry.user == user):
                raise ObjectNotFound(
                    f"No running query with id {query_id} that you may kill (SHOW PROCESSLIST lists them)"
                )
        deadline = time.monotonic() + KILL_WAIT_SECONDS
        while True:
            with self._lock:  # interrupted only while it runs: never the session's next statement
                if entry.state != RUNNING:
                    return entry
                entry.interrupt()
            if entry.done.wait(KILL_RETRY_SECONDS) or time.monotonic() > deadline:
                return entry
