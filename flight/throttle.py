"""Login throttling: each wrong password costs an Argon2id hash (19 MiB, ~30 ms), so guessing is slowed.

Per user: after ``failures`` wrong passwords within ``window_seconds``, further attempts for that user
are refused *without hashing* until a delay has passed; the delay doubles with each further failure,
up to ``max_delay`` (so nobody, root included, can be locked out for longer than that after the
attacker's last real attempt). Attempts refused during a delay are not counted and do not extend it.
A successful login clears the user's record. The refusal uses the same text as a wrong password.

Per peer: pyarrow (26) gives a server middleware only the call's method and headers, not the peer's
address (``ServerCallContext.peer()`` exists only in RPC handlers, after authentication), so
attempts cannot be counted per client address where the password is checked. Instead the cost any
number of clients can cause is bounded server-wide: at most ``concurrent_checks`` password hashes run
at once (memory: that many times 19 MiB), the others wait their turn.

The table is bounded (``max_entries``): a client spraying user names evicts the records that failed
least recently, never growing memory.

Nodes sharing a catalog pass ``shared`` (engine.catalog.login_failures): the per-user records then
live in PostgreSQL, so a guesser gets one allowance in all, not one per node. The bound on
concurrent hashes stays per node (it protects that node's memory).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass
class _Record:
    failures: int
    last_failure: float
    blocked_until: float = 0.0


class SharedRecords(Protocol):
    """Per-user records kept outside this process, under the same rules as the in-memory ones."""

    def blocked(self, user: str) -> bool: ...

    def failed(
        self, user: str, failures: int, window: float, base_delay: float, max_delay: float
    ) -> None: ...

    def succeeded(self, user: str) -> None: ...


class LoginThrottle:
    def __init__(
        self,
        *,
        failures: int = 5,
        window_seconds: float = 300.0,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        concurrent_checks: int = 2,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedRecords | None = None,
    ) -> None:
        self.failures = max(1, failures)
        self.window = window_seconds
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_entries = max(1, max_entries)
        self._clock = clock
        self._lock = threading.Lock()
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._checks = threading.BoundedSemaphore(max(1, concurrent_checks))
        self._shared = shared

    def attempt(self, user: str, verify: Callable[[], bool]) -> bool:
        """Run ``verify`` (the password hash) unless ``user`` is in a backoff delay; False if refused."""
        if self.blocked(user):
            return False
        with self._checks:
            ok = verify()
        if ok:
            self.succeeded(user)
        else:
            self.failed(user)
        return ok

    def blocked(self, user: str) -> bool:
        if self._shared is not None:
            return self._shared.blocked(user)
        with self._lock:
            record = self._records.get(user)
            return record is not None and self._clock() < record.blocked_until

    def failed(self, user: str) -> None:
        if self._shared is not None:
            self._shared.failed(user, self.failures, self.window, self.base_delay, self.max_delay)
            return
        now = self._clock()
        with self._lock:
            record = self._records.get(user)
            if record is None or (now - record.last_failure > self.window and now >= record.blocked_until):
                record = _Record(0, now)
            record.failures += 1
            record.last_failure = now
            over = record.failures - self.failures
            if over >= 0:
                record.blocked_until = now + min(self.max_delay, self.base_delay * 2 ** min(over, 32))
            self._records[user] = record
            self._records.move_to_end(user)
            while len(self._records) > self.max_entries:
                self._records.popitem(last=False)

    def succeeded(self, user: str) -> None:
        if self._shared is not None:
            self._shared.succeeded(user)
            return
        with self._lock:
            self._records.pop(user, None)

    def size(self) -> int:
        with self._lock:
            return len(self._records)
