"""One watcher thread for all running calls: interrupts DuckDB when a client cancels its gRPC call.

ADBC sends no cancel RPC; it cancels the call, which the handler only sees by polling
``context.is_cancelled()``. A shared thread avoids starting a thread per call; it polls on its
own clock rather than being woken per call, so short calls never wait for it to run.

A ``ServerCallContext`` is freed by gRPC as soon as its handler returns, so the watcher touches a
context only while holding the lock under which the call stays registered: a handler cannot leave
:meth:`CancelWatcher.watch` (and so cannot return) while its context is being polled. Polling a
context once was done outside the lock, and a call that returned meanwhile crashed the process.
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
            # Waits for a poll in progress: after this the watcher never sees the context again.
            with self._lock:
                self._calls.pop(call_id, None)

    def running(self) -> int:
        with self._lock:
            return len(self._calls)

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def poll_once(self) -> int:
        """Interrupt every registered call whose client has cancelled it; returns how many."""
        with self._lock:
            interrupts = [interrupt for context, interrupt in self._calls.values() if context.is_cancelled()]
            # Under the lock: the statement interrupted is still one its cancelled call runs. A call
            # stays registered and is interrupted again at every poll, because DuckDB forgets an
            # interrupt that arrives before its statement starts (a call cancelled while queued).
            for interrupt in interrupts:
                interrupt()
        return len(interrupts)

    def _loop(self) -> None:
        while not self._stopped:
            self.poll_once()
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()
