"""A query that runs for minutes, and waiting for it to show as running (cancel and KILL tests)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.e2e.stage_helpers import query


def long_query(prefix: str = "m") -> str:
    """A count over 10^11 rows (minutes), its column named uniquely so its log entry is found."""
    return f"SELECT count(*) AS {prefix}_{uuid.uuid4().hex[:8]} FROM range(100000000000) a"


def wait_running(conn: Any, sql: str, seconds: float = 20.0) -> dict[str, Any]:
    """``sql``'s SHOW PROCESSLIST row, once it runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [r for r in query(conn, "SHOW PROCESSLIST") if r["query"] == sql]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"{sql!r} never showed in SHOW PROCESSLIST")
