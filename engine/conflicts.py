"""Running again what lost a race to a concurrent change (two nodes writing one lake table).

Only work that is whole in itself may be run again: an autocommit INSERT, COPY or ingest, whose
transaction DuckDB ended when the conflict surfaced. A statement inside the client's transaction
never is: the client decides what its transaction does next.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from engine.errors import ConcurrentChange

T = TypeVar("T")
log = logging.getLogger("stageflight")
# Runs of work that keeps losing to concurrent changes before the client gets the
# ConcurrentChange error (backoff 20 ms doubling, jittered).
CONFLICT_RETRIES = 6


def retried_on_conflict(run: Callable[[], T]) -> T:
    for attempt in range(CONFLICT_RETRIES - 1):
        try:
            return run()
        except ConcurrentChange as exc:
            log.info("running again after a concurrent change (attempt %d): %s", attempt + 2, exc)
            time.sleep(random.uniform(0.5, 1.5) * 0.02 * 2**attempt)  # noqa: S311 - jitter, not secrets
    return run()  # the last run: its conflict reaches the client
