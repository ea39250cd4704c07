"""Presigned URLs on local storage: signing rules and the HTTP handler over a real loopback server."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pyarrow as pa
import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request

from stages.errors import BadStagePath, StageError
from stages.presign import SECRET_BYTES, PresignedFiles, PresignError, PresignSigner
from stages.storage.local import LocalBackend

KEY = "stage/user/alice/data/file.csv"
CONTENT = bytes(range(256)) * 40 + b"tail"  # 10244 bytes, every offset distinguishable
MiB = 1 << 20


class CountingBackend(LocalBackend):
    """A real LocalBackend that records which storage calls were made (to prove 'no I/O')."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[str] = []

    def stat(self, key: str) -> Any:
        self.calls.append("stat")
        return super().stat(key)

    def open_input(self, key: str) -> pa.NativeFile:
        self.calls.append("open_input")
        return super().open_input(key)

    def open_output(self, key: str) -> Any:
        self.calls.append("open_output")
        return super().open_output(key)


@dataclass
class Served:
    backend: CountingBackend
    signer: PresignSigner
    port: int
    root: Path
    finished: list[str] = field(default_factory=list)
    done: threading.Condition = field(default_factory=threading.Condition)

    def url(
        self,
        method: str,
        key: str = KEY,
        expire: int = 60,
        content_type: str | None = None,
        now: float | None = None,
    ) -> str:
        return self.signer.sign(method, key, expire, content_type, now=now)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        encode_chunked: bool = False,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {}, encode_chunked=encode_chunked)
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def wait_finished(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` requests have been fully handled by the server."""
        with self.done:
            assert self.done.wait_for(lambda: len(self.finished) >= count, timeout), self.finished

    def stored_files(self) -> list[str]:
        """Every file under the storage root, temporary ones included."""
        return sorted(str(Path(d, f).relative_to(self.root)) for d, _, fs in os.walk(self.root) for f in fs)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = tmp_path / "storage"
    backend = CountingBackend(root)
    signer = PresignSigner(b"s" * SECRET_BYTES)
    handler = PresignedFiles(backend, signer)
    state = Served(backend, signer, 0, root)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return handler(Request(environ))(environ, start_response)  # type: ignore[no-any-return]
        finally:
            with state.done:
                state.finished.append(environ["REQUEST_METHOD"])
                state.done.notify_all()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    state.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def put_file(served: Served, key: str = KEY, data: bytes = CONTENT) -> None:
    with served.backend.open_output(key) as out:
        out.write(data)


def with_query(path: str, **changes: str) -> str:
    parts = urlsplit(path)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return parts.path + "?" + "&".join(f"{k}={v}" for k, v in query.items())


# -- signer ---------------------------------------------------------------------------------------


def test_sign_shape_and_verify() -> None:
    signer = PresignSigner(b"k" * SECRET_BYTES)
    url = signer.sign("GET", KEY, 3600, None, now=1_000_000)
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    assert parts.path == "/files/" + KEY
    assert query["expires"] == "1003600"
    assert len(query["sig"]) == 64 and "ct" not in query
    signer.verify("GET", KEY, query, now=1_003_600)  # valid up to and including the expiry second
    with pytest.raises(PresignError, match="URL expired"):
        signer.verify("GET", KEY, query, now=1_003_601)


def test_signature_binds_every_field() -> None:
    signer = PresignSigner(b"k" * SECRET_BYTES)
    query = dict(parse_qsl(urlsplit(signer.sign("PUT", KEY, 60, "text/csv")).query))
    signer.verify("PUT", KEY, query)
    with pytest.raises(PresignError, match="method not allowed for this URL"):
        signer.verify("GET", KEY, query)
    with pytest.raises(PresignError, match="signature mismatch"):
        signer.verify("PUT", KEY + "x", query)
    with pytest.raises(PresignError, match="signature mismatch"):
        signer.verify("PUT", KEY, {**query, "ct": "text/plain"})
    with pytest.raises(PresignError, match="signature mismatch"):
        signer.verify("PUT", KEY, {k: v for k, v in query.items() if k != "ct"})
    with pytest.raises(PresignError, match="signature mismatch"):
        signer.verify("PUT", KEY, {**query, "expires": str(int(query["expires"]) + 1)})
    with pytest.raises(PresignError, match="signature mismatch"):
        PresignSigner(b"o" * SECRET_BYTES).verify("PUT", KEY, query)
    with pytest.raises(PresignError, match="missing or malformed"):
        signer.verify("PUT", KEY, {"expires": query["expires"]})
    assert issubclass(PresignError, StageError)


@pytest.mark.parametrize(
    ("method", "key", "expire", "content_type", "error", "message"),
    [
        ("DELETE", KEY, 60, None, PresignError, "Cannot presign method 'DELETE' (only GET and PUT)"),
        ("GET", KEY, 0, None, PresignError, "Expiry must be between 1 and 604800 seconds"),
        ("GET", KEY, 7 * 24 * 3600 + 1, None, PresignError, "Expiry must be between 1 and 604800 seconds"),
        ("PUT", KEY, 60, "text/csv\r\nX-Evil: 1", PresignError, "CONTENT_TYPE must be printable ASCII"),
        ("PUT", KEY, 60, "text/é", PresignError, "CONTENT_TYPE must be printable ASCII"),
        ("GET", "stage/user/alice/../bob/x", 60, None, BadStagePath, "'..' segments are not allowed"),
        ("GET", "/etc/passwd", 60, None, BadStagePath, "a file key must be relative"),
    ],
)
def test_sign_refuses(
    method: str, key: str, expire: int, content_type: str | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        PresignSigner(b"k" * SECRET_BYTES).sign(method, key, expire, content_type)


def test_secret_file_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "presign.key"
    first = PresignSigner.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == SECRET_BYTES
    url = first.sign("GET", KEY, 60, None)
    # A restarted server (new signer from the same file) accepts URLs issued before.
    PresignSigner.load_or_create(path).verify("GET", KEY, dict(parse_qsl(urlsplit(url).query)))
    assert os.listdir(path.parent) == ["presign.key"]  # no temp file left


def test_secret_file_other_readable_or_corrupt_refused(tmp_path: Path) -> None:
    path = tmp_path / "presign.key"
    PresignSigner.load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(PresignError, match="chmod 600"):
        PresignSigner.load_or_create(path)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(PresignError, match="corrupt"):
        PresignSigner.load_or_create(path)


def test_different_secret_files_differ(tmp_path: Path) -> None:
    a = PresignSigner.load_or_create(tmp_path / "a.key").sign("GET", KEY, 60, None, now=0)
    b = PresignSigner.load_or_create(tmp_path / "b.key").sign("GET", KEY, 60, None, now=0)
    assert a != b


# -- download -------------------------------------------------------------------------------------


def test_get_round_trip(served: Served) -> None:
    put_file(served)
    status, headers, body = served.request("GET", served.url("GET"))
    assert status == 200 and body == CONTENT
    info = served.backend.stat(KEY)
    assert headers["Content-Length"] == str(len(CONTENT))
    assert headers["ETag"] == f'"{info.etag}"'
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Last-Modified"].endswith("GMT")


def test_get_uses_signed_content_type(served: Served) -> None:
    put_file(served)
    status, headers, _ = served.request("GET", served.url("GET", content_type="text/csv"))
    assert status == 200 and headers["Content-Type"] == "text/csv"


def test_head(served: Served) -> None:
    put_file(served)
    status, headers, body = served.request("HEAD", served.url("GET"))
    assert status == 200 and body == b""
    assert headers["Content-Length"] == str(len(CONTENT))
    assert "open_input" not in served.backend.calls  # metadata only


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=2-5", 2, 6),
        ("bytes=10000-", 10000, len(CONTENT)),
        ("bytes=-3", len(CONTENT) - 3, len(CONTENT)),
        ("bytes=-999999", 0, len(CONTENT)),  # suffix longer than the file: all of it
        ("bytes=10240-999999", 10240, len(CONTENT)),  # end past the file is clamped
        ("bytes=0-0", 0, 1),
    ],
)
def test_range(served: Served, header: str, start: int, stop: int) -> None:
    put_file(served)
    status, headers, body = served.request("GET", served.url("GET"), headers={"Range": header})
    assert status == 206
    assert body == CONTENT[start:stop]
    assert headers["Content-Length"] == str(stop - start)
    assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(CONTENT)}"


@pytest.mark.parametrize("header", [f"bytes={len(CONTENT)}-", "bytes=99999-100000"])
def test_range_unsatisfiable(served: Served, header: str) -> None:
    put_file(served)
    status, headers, _ = served.request("GET", served.url("GET"), headers={"Range": header})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{len(CONTENT)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-1", "bytes=5-2", "garbage"])
def test_range_ignored_gives_whole_file(served: Served, header: str) -> None:
    put_file(served)
    status, _, body = served.request("GET", served.url("GET"), headers={"Range": header})
    assert status == 200 and body == CONTENT


def test_if_range_mismatch_gives_whole_file(served: Served) -> None:
    put_file(served)
    etag = f'"{served.backend.stat(KEY).etag}"'
    status, _, body = served.request(
        "GET", served.url("GET"), headers={"Range": "bytes=0-1", "If-Range": etag}
    )
    assert (status, body) == (206, CONTENT[:2])
    status, _, body = served.request(
        "GET", served.url("GET"), headers={"Range": "bytes=0-1", "If-Range": '"old"'}
    )
    assert (status, body) == (200, CONTENT)


def test_get_missing_file(served: Served) -> None:
    status, _, body = served.request("GET", served.url("GET", key="stage/user/alice/nope.csv"))
    assert status == 404 and body == b"File does not exist\n"


def test_get_large_file_streams(served: Served) -> None:
    data = os.urandom(3 * MiB + 17)
    put_file(served, data=data)
    status, _, body = served.request("GET", served.url("GET"))
    assert status == 200 and body == data


def test_unicode_key_round_trip(served: Served) -> None:
    key = "stage/user/alice/dir with space/é+ü&=.csv"
    url = served.url("PUT", key=key)
    assert " " not in url and "é" not in url
    assert served.request("PUT", url, body=b"unicode")[0] == 200
    assert served.request("GET", served.url("GET", key=key))[2] == b"unicode"


# -- upload ---------------------------------------------------------------------------------------


def test_put_then_get(served: Served) -> None:
    status, headers, body = served.request("PUT", served.url("PUT"), body=CONTENT)
    assert status == 200
    assert headers["ETag"] == f'"{served.backend.stat(KEY).etag}"'
    assert served.request("GET", served.url("GET"))[2] == CONTENT
    # PUT replaces an existing file
    assert served.request("PUT", served.url("PUT"), body=b"v2")[0] == 200
    assert served.request("GET", served.url("GET"))[2] == b"v2"


def test_put_empty_body(served: Served) -> None:
    assert served.request("PUT", served.url("PUT"), body=b"")[0] == 200
    assert served.backend.stat(KEY).size == 0


def test_put_chunked_transfer(served: Served) -> None:
    chunks = [b"a" * 1000, b"b" * (2 * MiB), b"c"]
    status, _, _ = served.request("PUT", served.url("PUT"), body=iter(chunks), encode_chunked=True)
    assert status == 200
    assert served.request("GET", served.url("GET"))[2] == b"".join(chunks)


def test_put_with_signed_content_type(served: Served) -> None:
    url = served.url("PUT", content_type="text/csv")
    status, _, body = served.request("PUT", url, body=b"a,b\n", headers={"Content-Type": "text/plain"})
    assert status == 400 and b"text/csv" in body
    status, _, _ = served.request("PUT", url, body=b"a,b\n")  # no Content-Type at all
    assert status == 400
    assert not served.backend.exists(KEY)
    assert served.request("PUT", url, body=b"a,b\n", headers={"Content-Type": "text/csv"})[0] == 200
    assert served.backend.exists(KEY)


def _vm_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise AssertionError(field_name)


@pytest.mark.slow
def test_put_300mb_streams_without_buffering(served: Served) -> None:
    total_chunks = 300
    blocks = [bytes([n]) * MiB for n in range(4)]
    expected = hashlib.sha256()
    for i in range(total_chunks):
        expected.update(blocks[i % 4])

    def body() -> Iterator[bytes]:
        for i in range(total_chunks):
            yield blocks[i % 4]

    # Server and client share this process: sample RSS while the upload runs (VmHWM alone could
    # hide the upload under an earlier peak of the test session).
    baseline = _vm_kib("VmRSS")
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _vm_kib("VmRSS"))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    hwm_before = _vm_kib("VmHWM")
    try:
        status, _, _ = served.request(
            "PUT", served.url("PUT"), body=body(), headers={"Content-Length": str(total_chunks * MiB)}
        )
    finally:
        stop.set()
        sampler.join()
    assert status == 200
    growth_mib = (peak[0] - baseline) / 1024
    assert growth_mib < 64, f"RSS grew by {growth_mib:.0f} MiB during a 300 MiB upload"
    assert (_vm_kib("VmHWM") - hwm_before) / 1024 < 64
    assert served.backend.stat(KEY).size == total_chunks * MiB
    digest = hashlib.sha256()
    with served.backend.open_input(KEY) as source:
        while chunk := source.read(8 * MiB):
            digest.update(chunk)
    assert digest.hexdigest() == expected.hexdigest()


def _raw_put(served: Served, path: str, head: str, body: bytes) -> None:
    """Send a request by hand and close the connection without waiting for an answer."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode() + body)


def test_put_connection_closed_early_leaves_nothing(served: Served) -> None:
    _raw_put(served, served.url("PUT"), "Content-Length: 5000000\r\n", b"x" * 100_000)
    served.wait_finished(1)
    assert served.stored_files() == []


def test_put_truncated_chunked_body_leaves_nothing(served: Served) -> None:
    _raw_put(served, served.url("PUT"), "Transfer-Encoding: chunked\r\n", b"100000\r\n" + b"x" * 5000)
    served.wait_finished(1)
    assert served.stored_files() == []


def test_put_short_body_keeps_old_file(served: Served) -> None:
    put_file(served)
    _raw_put(served, served.url("PUT"), "Content-Length: 100\r\n", b"new")
    served.wait_finished(1)
    assert served.stored_files() == [KEY]
    assert served.request("GET", served.url("GET"))[2] == CONTENT


# -- refusals -------------------------------------------------------------------------------------


def test_tampered_signature(served: Served) -> None:
    put_file(served)
    url = served.url("GET")
    sig = dict(parse_qsl(urlsplit(url).query))["sig"]
    forged = with_query(url, sig=("0" if sig[0] != "0" else "1") + sig[1:])
    assert served.request("GET", forged)[:3:2] == (403, b"signature mismatch\n")


def test_tampered_key(served: Served) -> None:
    put_file(served, "stage/user/bob/secret.csv", b"bob's")
    url = served.url("GET")  # alice's file
    forged = url.replace("/alice/data/file.csv", "/bob/secret.csv")
    status, _, body = served.request("GET", forged)
    assert (status, body) == (403, b"signature mismatch\n")
    assert "open_input" not in served.backend.calls


def test_tampered_expiry(served: Served) -> None:
    url = served.url("GET")
    forged = with_query(url, expires=str(int(dict(parse_qsl(urlsplit(url).query))["expires"]) + 86400))
    assert served.request("GET", forged)[:3:2] == (403, b"signature mismatch\n")


def test_missing_signature(served: Served) -> None:
    status, _, body = served.request("GET", "/files/" + KEY)
    assert (status, body) == (403, b"missing or malformed signature\n")


def test_expired(served: Served) -> None:
    put_file(served)
    url = served.url("GET", expire=60, now=time.time() - 3600)
    assert served.request("GET", url)[:3:2] == (403, b"URL expired\n")


def test_wrong_method(served: Served) -> None:
    put_file(served)
    status, _, body = served.request("PUT", served.url("GET"), body=b"overwrite")
    assert (status, body) == (403, b"method not allowed for this URL\n")
    status, _, body = served.request("GET", served.url("PUT"))
    assert (status, body) == (403, b"method not allowed for this URL\n")
    assert served.request("GET", served.url("GET"))[2] == CONTENT


@pytest.mark.parametrize("method", ["DELETE", "POST", "PATCH", "OPTIONS"])
def test_other_methods_405(served: Served, method: str) -> None:
    put_file(served)
    status, headers, _ = served.request(method, served.url("GET"))
    assert status == 405 and "PUT" in headers["Allow"]
    assert served.backend.exists(KEY)


@pytest.mark.parametrize(
    "path",
    [
        "/files/stage/user/alice/../bob/secret.csv",
        "/files/stage/user/alice/%2e%2e/bob/secret.csv",
        "/files/stage/user/alice/%2E%2E%2Fbob/secret.csv",
        "/files/stage/user/alice/%252e%252e/bob/secret.csv",
        "/files/stage/user/alice/./x.csv",
        "/files/stage/user/alice//x.csv",
        "/files//etc/passwd",
        "/files/stage/user/alice/x%00.csv",
    ],
)
def test_traversal_refused_without_io(served: Served, path: str) -> None:
    put_file(served, "stage/user/bob/secret.csv", b"bob's")
    served.backend.calls.clear()
    # Even a signature made for the decoded path would not help: validation comes first.
    query = urlsplit(served.url("GET", key="stage/user/bob/secret.csv")).query
    for method in ("GET", "PUT"):
        status, _, body = served.request(method, f"{path}?{query}", body=b"x" if method == "PUT" else None)
        assert status in (400, 403), (status, body)
        assert b"bob's" not in body and b"Traceback" not in body
    assert served.backend.calls == []
    assert served.stored_files() == ["stage/user/bob/secret.csv"]


def test_error_bodies_are_short_plain_text(served: Served) -> None:
    status, headers, body = served.request("GET", "/files/" + KEY + "?expires=1&sig=zz")
    assert status == 403
    assert headers["Content-Type"].startswith("text/plain")
    assert len(body) < 200 and b"Traceback" not in body
