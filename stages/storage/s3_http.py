"""The small S3 HTTP client: where requests go, signed keep-alive requests with retries, replies.

Also the guarded XML parsing of reply documents, shared by the backend and the upload writer, and
:class:`BucketAccess`, what the upload writer and the upload sweep use of the backend.
"""

from __future__ import annotations

import hashlib
import http.client
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from stages.errors import StageError
from stages.storage.s3_signing import Signer, uri_encode

_MAX_XML_BYTES = 32 * 1024 * 1024
_TIMEOUT = 60.0
_ATTEMPTS = 3
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_xml(body: bytes) -> ET.Element:
    """Parse a response document; DTDs are refused (the endpoint may be user supplied)."""
    if len(body) > _MAX_XML_BYTES or b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ValueError("unexpected XML document")
    return ET.fromstring(body)


def child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if local_name(child.tag) == name:
            return child.text or ""
    return None


def child_elements(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in element if local_name(child.tag) == name)


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def error_code(self) -> str:
        try:
            return child_text(parse_xml(self.body), "Code") or ""
        except (ET.ParseError, ValueError):
            return ""


class Endpoint:
    """Where requests go: scheme, host and the path style for one bucket."""

    def __init__(self, endpoint_url: str | None, bucket: str, region: str) -> None:
        if endpoint_url is None:
            self.scheme = "https"
            if "." in bucket:  # dotted names break the wildcard certificate: path style
                self.netloc, self.path_style = f"s3.{region}.amazonaws.com", True
            else:
                self.netloc, self.path_style = f"{bucket}.s3.{region}.amazonaws.com", False
        else:
            parts = urlsplit(endpoint_url)
            try:
                port = parts.port
            except ValueError:
                raise StageError("ENDPOINT_URL has an invalid port") from None
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.username is not None
                or parts.password is not None
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
            ):
                raise StageError("ENDPOINT_URL must look like http(s)://host[:port] (no path, query or user)")
            del port  # parsed only to reject a malformed one
            self.scheme, self.netloc, self.path_style = parts.scheme, parts.netloc, True
        parsed = urlsplit(f"{self.scheme}://{self.netloc}")
        self.host = parsed.hostname or ""
        self.port = parsed.port
        self.bucket = bucket

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"

    def path(self, object_key: str = "") -> str:
        """The URI-encoded request path for an object (or the bucket with ``''``)."""
        encoded = uri_encode(object_key, safe="/")
        return f"/{self.bucket}/{encoded}" if self.path_style else f"/{encoded}"

    def connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=_TIMEOUT, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=_TIMEOUT)


class Client:
    """Signed requests to one bucket, one keep-alive connection per thread."""

    def __init__(self, endpoint: Endpoint, signer: Signer | None) -> None:
        self.endpoint = endpoint
        self.signer = signer
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Client({self.endpoint.url!r})"

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.endpoint.connect()
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection (the next request opens a new one)."""
        self._drop_connection()

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def request(
        self,
        method: str,
        object_key: str = "",
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes | memoryview = b"",
        payload_sha256: str | None = None,
    ) -> Response:
        """Send one request (retried on dropped connections and 5xx); raises OSError if unreachable."""
        path = self.endpoint.path(object_key)
        target = path + (
            "?" + "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in query) if query else ""
        )
        base = {"host": self.endpoint.netloc, **{k.lower(): v for k, v in (headers or {}).items()}}
        if body or method in ("PUT", "POST"):
            base["content-length"] = str(len(body))
        last_error: OSError | None = None
        for attempt in range(_ATTEMPTS):
            if self.signer is not None:
                digest = payload_sha256 or (hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256)
                send = self.signer.sign_headers(method, path, query, base, digest)
            else:
                send = dict(base)
            conn = self._connection()
            try:
                conn.request(method, target, body=body if body else None, headers=send)
                raw = conn.getresponse()
                data = raw.read()
            except (http.client.HTTPException, OSError) as exc:
                self._drop_connection()
                last_error = exc if isinstance(exc, OSError) else OSError(str(exc))
                continue
            response = Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
            if raw.will_close:
                self._drop_connection()
            if response.status >= 500 and attempt + 1 < _ATTEMPTS:
                continue
            return response
        assert last_error is not None
        raise last_error


class BucketAccess(Protocol):
    """What the upload writer and the upload sweep use of ``S3Backend``: its place and its requests.

    A Protocol, so that those modules need not import the backend that imports them.
    """

    @property
    def bucket(self) -> str: ...

    @property
    def root(self) -> str: ...

    @property
    def endpoint(self) -> Endpoint: ...

    @property
    def signer(self) -> Signer | None: ...

    def call(
        self,
        client: Client,
        method: str,
        object_key: str,
        query: Sequence[tuple[str, str]] = (),
        **kwargs: object,
    ) -> Response:
        """One request; an unreachable endpoint becomes a StorageError."""
        ...

    def check(self, response: Response, key: str, object_key: str, action: str) -> None:
        """Raise the StorageError for a failed response (``action`` as in 'Cannot <action> key')."""
        ...
