"""One watcher thread for all running calls: interrupts DuckDB when a client cancels its gRPC call.

ADBC sends no cancel RPC; it cancels the call, which the handler only sees by polling
``context.is_cancelled()``. A shared thread avoids starting a thread per call; it polls on its
own clock rather than being woken per call, so short calls never wait for it to run.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pyarrow.flight as flight

POLL_SECONDS = 0.05


class CancelWatcher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[int, tuple[flight.ServerCallContext, Callable[[], None]]] = {}
        self._ids = itertools.count()
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="cancel-watch", daemon=True)
        self._thread.start()

    @contextmanager
    def watch(self, context: flight.ServerCallContext, interrupt: Callable[[], None]) -> Iterator[None]:
        call_id = next(self._ids)
        with self._lock:
            self._calls[call_id] = (context, interrupt)
        try:
            yield
        finally:
            with self._lock:
                self._calls.pop(call_id, None)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopped:
            with self._lock:
                calls = list(self._calls.items())
            for call_id, (context, interrupt) in calls:
                if context.is_cancelled():
                    with self._lock:
                        still_running = self._calls.pop(call_id, None) is not None
                    if still_running:
                        interrupt()
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
