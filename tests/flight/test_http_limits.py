"""The HTTP side bounds its connections: idle ones are closed, and past the bound new ones get a 503
instead of one more thread each (300 idle connections once meant 300 threads)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from werkzeug.wrappers import Request, Response

from flight.http import HttpSide


@pytest.fixture
def http_side() -> Iterator[HttpSide]:
    side = HttpSide("127.0.0.1", 0, None, idle_timeout=1.0, max_connections=4)
    side.start()
    yield side
    side.stop()


def _health(side: HttpSide) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{side.port}/health", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:  # the error is the response: close its socket
            return exc.code, exc.read()


def _idle_connections(side: HttpSide, n: int) -> list[socket.socket]:
    socks = [socket.create_connection(("127.0.0.1", side.port), timeout=5) for _ in range(n)]
    time.sleep(0.3)  # let the server accept them
    return socks


def test_idle_connections_are_closed_by_the_server(http_side: HttpSide) -> None:
    sock = _idle_connections(http_side, 1)[0]
    sock.settimeout(10)
    assert sock.recv(100) == b""  # closed by the server once idle longer than its timeout
    sock.close()
    assert _health(http_side)[0] == 200


def test_connections_past_the_bound_get_503_and_no_thread(http_side: HttpSide) -> None:
    before = threading.active_count()
    held = _idle_connections(http_side, 4)
    extra = _idle_connections(http_side, 20)
    assert threading.active_count() <= before + 4
    extra[0].settimeout(5)
    assert extra[0].recv(200).startswith(b"HTTP/1.1 503")
    status, body = _health(http_side)
    assert (status, body) == (503, b"too many connections\n")
    for sock in held + extra:
        sock.close()
    deadline = time.monotonic() + 10
    while _health(http_side)[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    status, body = _health(http_side)
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_a_slow_but_steady_upload_is_not_cut_off(http_side: HttpSide) -> None:
    def echo(request: Request) -> Response:
        return Response(request.get_data())

    http_side.route_prefix("/echo/", echo)
    sock = socket.create_connection(("127.0.0.1", http_side.port), timeout=10)
    body = b"x" * 40
    sock.sendall(b"PUT /echo/a HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nConnection: close\r\n\r\n")
    for i in range(0, 40, 10):  # 2 s in all, each gap shorter than the 1 s idle timeout
        time.sleep(0.5)
        sock.sendall(body[i : i + 10])
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    sock.close()
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(body)
