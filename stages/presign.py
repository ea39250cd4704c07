"""Presigned URLs for storage that cannot presign itself (local directories).

The server signs ``(method, key, expiry, content type)`` with an HMAC-SHA256 secret and serves the
URL on its own HTTP side (:class:`PresignedFiles`). Databend refuses PRESIGN on local storage; we
go further so clients can move large files without going through Flight.

A URL looks like ``/files/stage/user/alice/x.csv?expires=1767225600&sig=<hex>[&ct=text%2Fcsv][&bind=..]``.
``bind`` is an opaque, signed text from the engine naming what the URL's authority rests on (the
issuing user, the stage, the grant, each at a generation); the handler asks a ``binding_check``
whether it is still current, so DROP USER, REVOKE and DROP STAGE end URLs issued before them.
The key is percent-encoded once and decoded once (by the WSGI server); a decoded key must pass
:func:`stages.paths.validate_key`, which forbids ``%`` itself, so a double-encoded ``%252e`` can
never turn into a traversal.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, BinaryIO
from urllib.parse import quote, urlencode

import pyarrow as pa
from werkzeug.datastructures import Range
from werkzeug.exceptions import ClientDisconnected
from werkzeug.http import http_date
from werkzeug.wrappers import Request, Response

from stages.errors import BadStagePath, StageError, StorageError
from stages.keyfile import KEY_BYTES, KeyFileError, load_or_create_key
from stages.paths import validate_key
from stages.storage.base import StagedFile, StorageBackend

log = logging.getLogger("stageflight.presign")

SECRET_BYTES = KEY_BYTES
MAX_EXPIRE_SECONDS = 7 * 24 * 3600  # S3's limit for SigV4 presigned URLs
CHUNK_BYTES = 1 << 20
DEFAULT_PREFIX = "/files/"
SIGNED_METHODS = ("GET", "PUT")
_SIG_VERSION = b"stageflight-presign-v1"
# A content type goes back out in a response header: printable ASCII only (no CR/LF injection).
_CONTENT_TYPE_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,254}$")
_EXPIRES_RE = re.compile(r"^[0-9]{1,12}$")
_SIG_RE = re.compile(r"^[0-9a-f]{64}$")
# Printable ASCII (no newline: fields of the signed message are newline-separated).
_BINDING_RE = re.compile(r"^[\x21-\x7e]{1,2048}$")

# binding (None when the URL has none) -> why the URL no longer holds, or None when it does.
BindingCheck = Callable[[str | None], str | None]


class PresignError(StageError):
    """A presigned URL is malformed, tampered with, expired or used with the wrong method."""


# -- signing ----------------------------------------------------------------------------------------


class PresignSigner:
    """Signs and verifies the server's own presigned URLs."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < SECRET_BYTES:
            raise PresignError(f"The presign secret must be at least {SECRET_BYTES} bytes")
        self._secret = secret

    @classmethod
    def load_or_create(cls, path: Path) -> PresignSigner:
        """Keep the secret in ``path`` (mode 0600) so issued URLs survive a restart.

        Raises:
            PresignError: the file is unreadable, has the wrong size, or others may read it.
        """
        try:
            return cls(load_or_create_key(path, "presign secret", SECRET_BYTES))
        except KeyFileError as exc:
            raise PresignError(str(exc)) from None

    def sign(
        self,
        method: str,
        key: str,
        expire_seconds: int,
        content_type: str | None,
        now: float | None = None,
        binding: str | None = None,
    ) -> str:
        """The path and query of a URL allowing ``method`` on ``key`` for ``expire_seconds``.

        ``binding`` (signed with the rest) is handed back to the handler's ``binding_check``.

        Raises:
            PresignError: unknown method, expiry out of range, an unusable content type or binding.
            BadStagePath: the key is unsafe.
        """
        _check_method(method)
        validate_key(key)
        if not 0 < expire_seconds <= MAX_EXPIRE_SECONDS:
            raise PresignError(f"Expiry must be between 1 and {MAX_EXPIRE_SECONDS} seconds")
        content_type = _check_content_type(content_type)
        if binding is not None and not _BINDING_RE.match(binding):
            raise PresignError("A URL binding must be 1 to 2048 printable ASCII characters")
        expires = int(time.time() if now is None else now) + expire_seconds
        query = {"expires": str(expires), "sig": self._mac(method, key, expires, content_type, binding)}
        if content_type:
            query["ct"] = content_type
        if binding:
            query["bind"] = binding
        return f"{DEFAULT_PREFIX}{quote(key, safe='/')}?{urlencode(query)}"

    def verify(
        self, method: str, key: str, query_params: Mapping[str, str], now: float | None = None
    ) -> None:
        """Check a request's query against ``method`` and the (decoded, validated) ``key``.

        Raises:
            PresignError: ``signature mismatch``, ``URL expired``, ``method not allowed for this URL``
                or a missing/malformed parameter.
        """
        expires_text, sig = query_params.get("expires", ""), query_params.get("sig", "")
        if not _EXPIRES_RE.match(expires_text) or not _SIG_RE.match(sig):
            raise PresignError("missing or malformed signature")
        expires = int(expires_text)
        content_type = query_params.get("ct") or None
        binding = query_params.get("bind") or None
        if binding is not None and not _BINDING_RE.match(binding):
            raise PresignError("missing or malformed signature")
        if not self._matches(sig, method, key, expires, content_type, binding):
            # Only after a mismatch: tell a client that used a GET URL for PUT what went wrong.
            if any(
                self._matches(sig, other, key, expires, content_type, binding)
                for other in SIGNED_METHODS
                if other != method
            ):
                raise PresignError("method not allowed for this URL")
            raise PresignError("signature mismatch")
        # Expiry is checked after the MAC, so a tampered 'expires' reads as tampering.
        if (time.time() if now is None else now) > expires:
            raise PresignError("URL expired")

    def _matches(
        self, sig: str, method: str, key: str, expires: int, content_type: str | None, binding: str | None
    ) -> bool:
        return hmac.compare_digest(sig, self._mac(method, key, expires, content_type, binding))

    def _mac(self, method: str, key: str, expires: int, content_type: str | None, binding: str | None) -> str:
        # Fields are newline-separated: no field can contain a newline (keys refuse control
        # characters, content types and bindings are printable ASCII), so the encoding is
        # unambiguous. The binding is a sixth field only when present.
        fields = [
            _SIG_VERSION,
            method.encode(),
            key.encode("utf-8"),
            str(expires).encode(),
            (content_type or "").encode("ascii"),
        ]
        if binding:
            fields.append(binding.encode("ascii"))
        return hmac.new(self._secret, b"\n".join(fields), hashlib.sha256).hexdigest()


def _check_method(method: str) -> None:
    if method not in SIGNED_METHODS:
        raise PresignError(f"Cannot presign method {method!r} (only GET and PUT)")


def _check_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    if not _CONTENT_TYPE_RE.match(content_type) or content_type != content_type.strip():
        raise PresignError(
            "CONTENT_TYPE must be printable ASCII without leading/trailing spaces, at most 255 characters"
        )
    return content_type


# -- serving ----------------------------------------------------------------------------------------


class _ShortBody(Exception):
    """The client sent fewer bytes than its Content-Length said."""


class _Unsatisfiable(Exception):
    """The Range starts at or after the end of the file (answered with 416)."""


def _text(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain", headers=dict(headers or {}))


class _FileChunks:
    """Response body reading ``length`` bytes from ``start`` in 1 MiB chunks.

    A class rather than a generator: werkzeug calls ``close()`` even when the body is never
    iterated (client gone, HEAD), and an unstarted generator would not run its ``finally``.
    """

    def __init__(self, source: pa.NativeFile, start: int, length: int) -> None:
        self._source, self._start, self._length = source, start, length

    def __iter__(self) -> Iterator[bytes]:
        self._source.seek(self._start)
        remaining = self._length
        while remaining > 0:
            chunk = self._source.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break  # truncated underneath us; Content-Length makes the client notice
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        self._source.close()


class PresignedFiles:
    """Werkzeug handler for ``GET|HEAD|PUT <prefix><key>?expires=..&sig=..[&ct=..]``."""

    def __init__(
        self,
        backend: StorageBackend,
        signer: PresignSigner,
        prefix: str = DEFAULT_PREFIX,
        binding_check: BindingCheck | None = None,
    ) -> None:
        self.backend = backend
        self.signer = signer
        self.prefix = prefix
        self.binding_check = binding_check

    def __call__(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except BadStagePath as exc:
            return _text(400, str(exc))
        except PresignError as exc:
            return _text(403, str(exc))
        except StorageError as exc:
            if "does not exist" in str(exc):
                return _text(404, "File does not exist")
            log.warning("presigned %s %s failed: %s", request.method, request.path, exc)
            return _text(500, str(exc))
        except Exception:
            # Never a traceback to the client: details go to the server log only.
            log.exception("presigned %s %s failed", request.method, request.path)
            return _text(500, "internal error")

    def _handle(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD", "PUT"):
            return _text(405, "method not allowed", {"Allow": "GET, HEAD, PUT"})
        if not request.path.startswith(self.prefix):
            return _text(404, "not found")
        # request.path is already percent-decoded once by the WSGI server: never decode again.
        key = validate_key(request.path[len(self.prefix) :])
        signed_method = "PUT" if request.method == "PUT" else "GET"  # HEAD rides on a GET URL
        self.signer.verify(signed_method, key, request.args)
        if self.binding_check is not None:
            # After the signature: the binding is the server's own text, not the client's.
            refused = self.binding_check(request.args.get("bind") or None)
            if refused is not None:
                raise PresignError(refused)
        content_type = request.args.get("ct") or None
        if request.method == "PUT":
            return self._put(request, key, content_type)
        return self._get(request, key, content_type)

    # -- download -----------------------------------------------------------------------------------

    def _get(self, request: Request, key: str, content_type: str | None) -> Response:
        info = self.backend.stat(key)
        headers = _file_headers(info, content_type)
        if request.method == "HEAD":
            headers["Content-Length"] = str(info.size)
            return Response(status=200, headers=headers)
        source = self.backend.open_input(key)
        try:
            return self._body(request, source, info, headers)
        except BaseException:
            source.close()
            raise

    def _body(
        self, request: Request, source: pa.NativeFile, info: StagedFile, headers: dict[str, str]
    ) -> Response:
        size = source.size()
        if size != info.size:
            headers.pop("ETag", None)  # replaced between stat and open: the etag is not this file's
        try:
            span = _requested_span(request, size, headers.get("ETag"))
        except _Unsatisfiable:
            source.close()
            return _text(416, "requested range not satisfiable", {"Content-Range": f"bytes */{size}"})
        if span is None:
            headers["Content-Length"] = str(size)
            return Response(
                _FileChunks(source, 0, size), status=200, headers=headers, direct_passthrough=True
            )
        start, stop = span
        headers["Content-Length"] = str(stop - start)
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        return Response(
            _FileChunks(source, start, stop - start), status=206, headers=headers, direct_passthrough=True
        )

    # -- upload -------------------------------------------------------------------------------------

    def _put(self, request: Request, key: str, content_type: str | None) -> Response:
        if content_type is not None and request.headers.get("Content-Type", "").strip() != content_type:
            return _text(400, f"Content-Type must be {content_type!r} for this URL")
        if "Content-Length" in request.headers and request.content_length is None:
            return _text(400, "malformed Content-Length")
        try:
            with self.backend.open_output(key) as out:
                _copy_body(request.stream, out, request.content_length)
        except (_ShortBody, ClientDisconnected, OSError, ValueError):
            # The atomic write discarded its temp file; the client has most likely gone already.
            log.info("presigned PUT of %s aborted: incomplete request body", key)
            return _text(400, "request body incomplete; nothing was stored")
        info = self.backend.stat(key)
        return Response(status=200, headers={"ETag": _quoted_etag(info)})


def _copy_body(stream: IO[bytes], out: BinaryIO, expected: int | None) -> None:
    """Copy the request body in chunks; raise if it ends before ``expected`` bytes."""
    received = 0
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            break
        out.write(chunk)
        received += len(chunk)
    if expected is not None and received != expected:
        # Raised inside open_output's with-block, so the partial file is never published.
        raise _ShortBody(f"got {received} of {expected} bytes")


def _quoted_etag(info: StagedFile) -> str:
    return f'"{info.etag}"' if info.etag else ""


def _file_headers(info: StagedFile, content_type: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": content_type or "application/octet-stream",
        "Last-Modified": http_date(info.last_modified),
        "Accept-Ranges": "bytes",
    }
    if info.etag:
        headers["ETag"] = _quoted_etag(info)
    return headers


def _requested_span(request: Request, size: int, etag: str | None) -> tuple[int, int] | None:
    """``(start, stop)`` of a satisfiable single range, or None for the whole file.

    Malformed and multi-range headers are ignored (RFC 9110 lets a server send the full file),
    as is a Range whose If-Range does not match the current ETag.

    Raises:
        _Unsatisfiable: the range starts beyond the end of the file.
    """
    ranges: Range | None = request.range
    if ranges is None or ranges.units != "bytes" or len(ranges.ranges) != 1:
        return None
    if "If-Range" in request.headers and (etag is None or request.headers["If-Range"].strip() != etag):
        return None
    start, end = ranges.ranges[0]  # werkzeug: end exclusive or None; start < 0 for 'bytes=-n'
    if start < 0:
        # A suffix longer than the file means the whole file (RFC 9110 §14.1.2).
        if size == 0:
            raise _Unsatisfiable
        return max(0, size + start), size
    if start >= size:
        raise _Unsatisfiable
    return start, size if end is None else min(end, size)
