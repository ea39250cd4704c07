"""The small HTTP side: /health and /metrics (presigned stage URLs are served here too)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

Handler = Callable[[Request], Response]


class HttpSide:
    def __init__(self, host: str, port: int, metrics: Callable[[], dict[str, float]]) -> None:
        # werkzeug's access log would print presigned URLs, signatures included.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._metrics = metrics
        self._routes: dict[str, Handler] = {"/health": self._health, "/metrics": self._metrics_page}
        self._prefix_routes: list[tuple[str, Handler]] = []
        self._server: BaseWSGIServer = make_server(host, port, self._app, threaded=True)
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
        return response(environ, start_response)

    def _health(self, request: Request) -> Response:
        return Response(json.dumps({"status": "ok"}), mimetype="application/json")

    def _metrics_page(self, request: Request) -> Response:
        lines = [f"stageflight_{name} {value}" for name, value in sorted(self._metrics().items())]
        return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
