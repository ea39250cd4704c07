"""The small HTTP side: /health and /metrics (presigned stage URLs are served here too)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from flight.metrics import CONTENT_TYPE, ServerMetrics

Handler = Callable[[Request], Response]

# A connection that sends nothing for this long is closed (each socket read waits at most this long;
# a large upload that keeps sending is never cut off).
IDLE_TIMEOUT_SECONDS = 30.0
# One thread per connection: past this many open connections, new ones get a 503 and are closed.
MAX_CONNECTIONS = 128

_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\n"
)


class _BoundedServer(ThreadedWSGIServer):
    """werkzeug's threaded server with a bound on connections (and so on threads)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, app: Any, handler: type[WSGIRequestHandler], limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        super().__init__(host, port, app, handler=handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY_RESPONSE)
            except OSError:
                pass
            finally:
                self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _handler_with_timeout(seconds: float) -> type[WSGIRequestHandler]:
    # socketserver applies ``timeout`` to the connection's socket before the request is read.
    return type("TimedRequestHandler", (WSGIRequestHandler,), {"timeout": seconds})


class HttpSide:
    def __init__(
        self,
        host: str,
        port: int,
        metrics: ServerMetrics | None,
        *,
        health: Callable[[], dict[str, str]] | None = None,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        # werkzeug's access log would print presigned URLs, signatures included.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._metrics = metrics or ServerMetrics()
        self._checks = health
        self._routes: dict[str, Handler] = {"/health": self._health, "/metrics": self._metrics_page}
        self._prefix_routes: list[tuple[str, Handler]] = []
        self._server = _BoundedServer(
            host, port, self._app, _handler_with_timeout(idle_timeout), max_connections
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def route_prefix(self, prefix: str, handler: Handler) -> None:
        self._prefix_routes.append((prefix, handler))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        handler = self._routes.get(request.path)
        if handler is None:
            handler = next((h for p, h in self._prefix_routes if request.path.startswith(p)), None)
        response = handler(request) if handler else Response("not found\n", status=404)
        self._metrics.http_requests.labels(_route(request.path), str(response.status_code)).inc()
        return response(environ, start_response)

    def _health(self, request: Request) -> Response:
        """``{"status": "ok", ...}`` with each store's state; 503 when one is unreachable, so a load
        balancer takes the node out until its catalog (or lake) answers again."""
        checks = self._checks() if self._checks is not None else {}
        healthy = all(state == "ok" for state in checks.values())
        body = {"status": "ok" if healthy else "unavailable", **checks}
        return Response(json.dumps(body), status=200 if healthy else 503, mimetype="application/json")

    def _metrics_page(self, request: Request) -> Response:
        return Response(self._metrics.page(), headers={"Content-Type": CONTENT_TYPE})


def _route(path: str) -> str:
    """A label that never holds the path itself (presigned paths name files)."""
    if path in ("/health", "/metrics"):
        return path[1:]
    return "presign" if path.startswith("/files/") else "other"
