"""/health names each store's state: 200 and "ok" while both answer, 503 naming the one that does not."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from flight.http import HttpSide


def _get(port: int) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:  # the error is the response: close its socket
            return exc.code, json.loads(exc.read())


def test_health_reports_the_database_and_the_catalog(server):
    assert server.http is not None
    assert _get(server.http.port) == (200, {"status": "ok", "catalog": "ok", "database": "ok"})


def test_an_unreachable_store_makes_health_503():
    side = HttpSide("127.0.0.1", 0, None, health=lambda: {"catalog": "ok", "lake": "unavailable: gone"})
    side.start()
    try:
        expected = {"status": "unavailable", "catalog": "ok", "lake": "unavailable: gone"}
        assert _get(side.port) == (503, expected)
    finally:
        side.stop()
