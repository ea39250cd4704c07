"""Wrong-password records every node sharing a PostgreSQL catalog sees (``login_failures``).

On one node the login throttle (flight.throttle) keeps them in memory. With several nodes a guesser
would otherwise get each node's allowance: here one row per user holds the count and the end of
the user's backoff delay, on PostgreSQL's clock, so the rules are the same on every node and the
delay ends at the same moment everywhere.

Each call is one statement outside any transaction (no catalog write lock); two nodes failing at
the same moment may both set the delay, never lose it. Rows of users whose window has passed are
swept now and then, so names sprayed by a guesser do not stay.
"""

from __future__ import annotations

import threading

from engine.catalog.security_store import SecurityStore

DDL = """CREATE TABLE IF NOT EXISTS login_failures (
    user_name VARCHAR PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure TIMESTAMPTZ NOT NULL,
    blocked_until TIMESTAMPTZ)"""
# Failures between two sweeps of stale rows, per node.
SWEEP_EVERY = 64

_FAILED = """
INSERT INTO login_failures AS f (user_name, failures, last_failure)
VALUES (?, 1, clock_timestamp())
ON CONFLICT (user_name) DO UPDATE SET
    failures = CASE
        WHEN f.last_failure < clock_timestamp() - make_interval(secs => ?)
             AND coalesce(f.blocked_until, '-infinity') <= clock_timestamp() THEN 1
        ELSE f.failures + 1 END,
    last_failure = clock_timestamp()
RETURNING failures"""
_BLOCK = """
UPDATE login_failures SET blocked_until = clock_timestamp() + make_interval(secs => ?)
WHERE user_name = ?"""
_BLOCKED = "SELECT 1 FROM login_failures WHERE user_name = ? AND blocked_until > clock_timestamp()"
_SWEEP = """
DELETE FROM login_failures
WHERE last_failure < clock_timestamp() - make_interval(secs => ?)
  AND coalesce(blocked_until, '-infinity') < clock_timestamp()"""


class SharedLoginFailures:
    """The records behind flight.throttle.LoginThrottle when the catalog is shared."""

    def __init__(self, security: SecurityStore) -> None:
        self._security = security
        self._count = 0
        self._lock = threading.Lock()

    def blocked(self, user: str) -> bool:
        return bool(self._security.rows(_BLOCKED, [user]))

    def failed(self, user: str, failures: int, window: float, base_delay: float, max_delay: float) -> None:
        """One more wrong password for ``user``: from the ``failures``-th within ``window`` seconds
        on, the next attempts wait ``base_delay`` seconds, doubling each time, at most ``max_delay``."""
        [(count,)] = self._security.rows(_FAILED, [user, float(window)])
        over = int(count) - failures
        if over >= 0:
            delay = min(max_delay, base_delay * 2 ** min(over, 32))
            self._security.rows(_BLOCK, [float(delay), user])
        with self._lock:
            self._count += 1
            sweep = self._count % SWEEP_EVERY == 0
        if sweep:
            self._security.rows(_SWEEP, [float(window)])

    def succeeded(self, user: str) -> None:
        self._security.rows("DELETE FROM login_failures WHERE user_name = ?", [user])
