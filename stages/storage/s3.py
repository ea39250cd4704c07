"""Stage files in an S3 bucket (AWS or an S3-compatible endpoint).

Reads go through :class:`pyarrow.fs.S3FileSystem` (random access with read-ahead, and the same
filesystem object is handed to ``pyarrow.dataset``). Everything pyarrow cannot do safely is done
with a small SigV4 client on :mod:`http.client`:

* **Writes.** pyarrow's S3 output stream cannot be aborted from Python: its destructor *completes*
  the upload, so an exception in a ``with`` block would publish a partial object. Our writer
  buffers one part at a time and either completes the multipart upload (or does one PutObject
  for small files) on a clean exit, or aborts it, leaving nothing behind.
* **Listing and stat.** pyarrow's ``FileInfo`` has no ETag, so we use ListObjectsV2 (a flat,
  sorted, paginated prefix listing: exactly the contract's prefix semantics) and HeadObject.
* **Delete.** DeleteObjects in batches of 1000; pyarrow's ``delete_file`` would also create
  "directory" marker objects for parents that became empty.
* **Presign.** SigV4 query signing per the AWS spec, with no extra dependency.

Credentials live only in the signer and in pyarrow's filesystem; they never appear in ``repr``,
in log records or in error messages (errors name ``s3://bucket/key`` only).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import io
import logging
import re
import socket
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import BinaryIO, cast
from urllib.parse import quote, unquote_plus, urlsplit
from xml.sax.saxutils import escape as xml_escape

import pyarrow as pa
import pyarrow.fs as pafs

from stages.errors import BadStagePath, StageError, StorageError
from stages.paths import clean_rel_path, validate_key, validate_prefix
from stages.storage.base import PresignedRequest, StagedFile, StorageBackend

logger = logging.getLogger(__name__)

OPTION_KEYS = frozenset({"ENDPOINT_URL", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "REGION", "SESSION_TOKEN"})
DEFAULT_REGION = "us-east-1"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the SigV4 limit
PART_SIZE = 8 * 1024 * 1024  # S3 needs >= 5 MiB for every part but the last
MAX_PARTS = 10_000
DELETE_BATCH = 1000  # DeleteObjects limit
_MAX_XML_BYTES = 32 * 1024 * 1024
_TIMEOUT = 60.0
_ATTEMPTS = 3
_UNSIGNED = "UNSIGNED-PAYLOAD"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_REGION_RE = re.compile(r"^[a-z0-9-]{1,64}$")
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "InvalidSecurity",
        "AuthorizationHeaderMalformed",
        "AllAccessDisabled",
        "AccountProblem",
    }
)
_AUTH_MARKERS = (
    "ACCESS_DENIED",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "ExpiredToken",
    "InvalidToken",
    "HTTP response code 403",
    "response code: 403",
)


def _missing(key: str) -> StorageError:
    return StorageError(f"File does not exist: {key}")


def _uri_encode(text: str, safe: str = "") -> str:
    """RFC 3986 encoding as SigV4 wants it: only ``A-Za-z0-9-_.~`` (plus ``safe``) stay as is."""
    return quote(text, safe="-_.~" + safe)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_xml(body: bytes) -> ET.Element:
    """Parse a response document; DTDs are refused (the endpoint may be user supplied)."""
    if len(body) > _MAX_XML_BYTES or b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ValueError("unexpected XML document")
    return ET.fromstring(body)


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name:
            return child.text or ""
    return None


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in element if _local(child.tag) == name)


def _etag(raw: str | None) -> str | None:
    if not raw:
        return None
    return raw.strip().strip('"') or None


def _whole_seconds(moment: datetime) -> datetime:
    # HeadObject reports whole seconds, ListObjectsV2 milliseconds: keep both in agreement.
    return moment.astimezone(UTC).replace(microsecond=0)


class _Credentials:
    """Static credentials. Deliberately no dataclass: nothing may print the secret."""

    __slots__ = ("access_key", "secret_key", "session_token")

    def __init__(self, access_key: str, secret_key: str, session_token: str | None) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token

    def __repr__(self) -> str:
        return "_Credentials(<hidden>)"

    def secrets(self) -> list[str]:
        return [s for s in (self.access_key, self.secret_key, self.session_token) if s]


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def error_code(self) -> str:
        try:
            return _child_text(_parse_xml(self.body), "Code") or ""
        except (ET.ParseError, ValueError):
            return ""


class _Signer:
    """AWS Signature Version 4 for the ``s3`` service (header and query forms)."""

    def __init__(self, credentials: _Credentials, region: str) -> None:
        self._credentials = credentials
        self._region = region

    def __repr__(self) -> str:
        return f"_Signer(region={self._region!r})"

    def _scope(self, date: str) -> str:
        return f"{date}/{self._region}/s3/aws4_request"

    def _signature(self, amz_date: str, canonical_request: str) -> str:
        date = amz_date[:8]
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                amz_date,
                self._scope(date),
                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
            ]
        )
        key = _hmac(("AWS4" + self._credentials.secret_key).encode("utf-8"), date)
        for part in (self._region, "s3", "aws4_request"):
            key = _hmac(key, part)
        return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()

    @staticmethod
    def _canonical(
        method: str, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str], payload: str
    ) -> tuple[str, str]:
        canonical_query = "&".join(
            f"{k}={v}" for k, v in sorted((_uri_encode(k), _uri_encode(v)) for k, v in query)
        )
        names = sorted(headers)
        canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
        signed = ";".join(names)
        return "\n".join([method, path, canonical_query, canonical_headers, signed, payload]), signed

    def sign_headers(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        payload_sha256: str,
        now: datetime | None = None,
    ) -> dict[str, str]:
        """Headers to send: ``headers`` plus x-amz-date, x-amz-content-sha256 and Authorization.

        ``path`` is the already URI-encoded request path; ``headers`` must include ``host``.
        """
        amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        signed_headers = {name.lower(): value for name, value in headers.items()}
        signed_headers["x-amz-date"] = amz_date
        signed_headers["x-amz-content-sha256"] = payload_sha256
        if self._credentials.session_token:
            signed_headers["x-amz-security-token"] = self._credentials.session_token
        canonical, signed = self._canonical(method, path, query, signed_headers, payload_sha256)
        signature = self._signature(amz_date, canonical)
        credential = f"{self._credentials.access_key}/{self._scope(amz_date[:8])}"
        signed_headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
        )
        return signed_headers

    def presign_query(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        expires: int,
        now: datetime | None = None,
    ) -> list[tuple[str, str]]:
        """Query parameters of a presigned URL (payload unsigned, as every S3 presigner does)."""
        amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        signed_headers = {name.lower(): value for name, value in headers.items()}
        query = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", f"{self._credentials.access_key}/{self._scope(amz_date[:8])}"),
            ("X-Amz-Date", amz_date),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", ";".join(sorted(signed_headers))),
        ]
        if self._credentials.session_token:
            query.append(("X-Amz-Security-Token", self._credentials.session_token))
        canonical, _ = self._canonical(method, path, query, signed_headers, _UNSIGNED)
        query.append(("X-Amz-Signature", self._signature(amz_date, canonical)))
        return query


class _Endpoint:
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
        encoded = _uri_encode(object_key, safe="/")
        return f"/{self.bucket}/{encoded}" if self.path_style else f"/{encoded}"

    def connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=_TIMEOUT, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=_TIMEOUT)


class _Client:
    """Signed requests to one bucket, one keep-alive connection per thread."""

    def __init__(self, endpoint: _Endpoint, signer: _Signer | None) -> None:
        self.endpoint = endpoint
        self.signer = signer
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"_Client({self.endpoint.url!r})"

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
    ) -> _Response:
        """Send one request (retried on dropped connections and 5xx); raises OSError if unreachable."""
        path = self.endpoint.path(object_key)
        target = path + (
            "?" + "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in query) if query else ""
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
            response = _Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)
            if raw.will_close:
                self._drop_connection()
            if response.status >= 500 and attempt + 1 < _ATTEMPTS:
                continue
            return response
        assert last_error is not None
        raise last_error


class _S3Writer(io.BufferedIOBase):
    """A streamed, abortable upload: one part in memory at a time.

    ``close()`` only stops further writes; the object is published by :meth:`commit` (the
    ``with`` block exited cleanly) and never by :meth:`abort`.
    """

    def __init__(self, backend: S3Backend, key: str, object_key: str) -> None:
        super().__init__()
        self._backend = backend
        self._key = key
        self._object_key = object_key
        self._client = _Client(backend._endpoint, backend._signer)  # a connection of its own
        self._buffer = bytearray()
        self._position = 0
        self._upload_id: str | None = None
        self._parts: list[tuple[int, str]] = []

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def write(self, data: object) -> int:
        if self.closed:
            raise ValueError("write to closed file")
        view = memoryview(data).cast("B")  # type: ignore[arg-type]
        size = len(view)
        offset = 0
        while offset < size:
            room = self._part_size() - len(self._buffer)
            take = min(room, size - offset)
            self._buffer += view[offset : offset + take]
            offset += take
            if len(self._buffer) >= self._part_size():
                self._upload_part()
        self._position += size
        return size

    def flush(self) -> None:
        pass  # parts are uploaded when full; nothing is visible before commit anyway

    def _part_size(self) -> int:
        # Grow the part size every 1000 parts so the 10,000-part limit allows ~430 GiB.
        return PART_SIZE * (1 + len(self._parts) // 1000)

    def _request(self, method: str, query: Sequence[tuple[str, str]], **kwargs: object) -> _Response:
        return self._backend._call(self._client, method, self._object_key, query, **kwargs)

    def _upload_part(self) -> None:
        if self._upload_id is None:
            response = self._request(
                "POST", [("uploads", "")], headers={"content-type": "application/octet-stream"}
            )
            self._backend._check(response, self._key, self._object_key, "start the upload of")
            upload_id = self._find(response, "UploadId")
            if not upload_id:
                raise StorageError(f"Cannot write {self._key}: the S3 endpoint returned no upload id")
            self._upload_id = upload_id
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise StorageError(f"Cannot write {self._key}: the file is too large for one S3 object")
        body = memoryview(self._buffer)
        try:
            response = self._request(
                "PUT", [("partNumber", str(number)), ("uploadId", self._upload_id)], body=body
            )
        finally:
            body.release()
        self._backend._check(response, self._key, self._object_key, "write")
        etag = response.headers.get("etag")
        if not etag:
            raise StorageError(f"Cannot write {self._key}: the S3 endpoint returned no part ETag")
        self._parts.append((number, etag))
        self._buffer = bytearray()

    def _find(self, response: _Response, name: str) -> str | None:
        try:
            return _child_text(_parse_xml(response.body), name)
        except (ET.ParseError, ValueError):
            raise StorageError(f"Cannot write {self._key}: unreadable reply from the S3 endpoint") from None

    def commit(self) -> None:
        if self._upload_id is None:
            body = memoryview(self._buffer)
            try:
                response = self._request(
                    "PUT", [], headers={"content-type": "application/octet-stream"}, body=body
                )
            finally:
                body.release()
            self._backend._check(response, self._key, self._object_key, "write")
            self._buffer = bytearray()
            return
        if self._buffer or not self._parts:
            self._upload_part()
        parts = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{xml_escape(etag)}</ETag></Part>"
            for n, etag in self._parts
        )
        document = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        response = self._request("POST", [("uploadId", self._upload_id)], body=document)
        self._backend._check(response, self._key, self._object_key, "write")
        # S3 may answer 200 and put the failure in the body.
        try:
            root = _parse_xml(response.body) if response.body.strip() else None
        except (ET.ParseError, ValueError):
            root = None
        if root is not None and _local(root.tag) == "Error":
            code = _child_text(root, "Code") or "unknown error"
            raise StorageError(f"Cannot write {self._key}: S3 refused to complete the upload ({code})")
        self._upload_id = None

    def release(self) -> None:
        """Free the buffer and close the writer's connection."""
        self._buffer = bytearray()
        self._client.close()

    def abort(self) -> None:
        self._buffer = bytearray()
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        try:
            response = self._client.request("DELETE", self._object_key, [("uploadId", upload_id)])
            if response.status not in (200, 204, 404):
                logger.warning(
                    "Could not abort the upload of s3://%s/%s (HTTP %s)",
                    self._backend.bucket,
                    self._object_key,
                    response.status,
                )
        except OSError as exc:
            logger.warning(
                "Could not abort the upload of s3://%s/%s: %s",
                self._backend.bucket,
                self._object_key,
                type(exc).__name__,
            )


class S3Backend(StorageBackend):
    """Objects under ``s3://bucket/root/``; keys map to ``root + key``."""

    scheme = "s3"

    def __init__(
        self,
        bucket: str,
        root: str = "",
        *,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str = DEFAULT_REGION,
        session_token: str | None = None,
    ) -> None:
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise StageError(f"Invalid S3 bucket name '{bucket[:80]}'")
        if not _REGION_RE.match(region):
            raise StageError("Invalid S3 REGION")
        if root:
            if not root.endswith("/"):
                root += "/"
            try:
                if root.startswith("/") or clean_rel_path(root) != root:
                    raise BadStagePath("empty segments ('//') are not allowed")
            except BadStagePath as exc:
                raise StageError(f"Invalid S3 URL path: {exc}") from None
        if bool(access_key_id) != bool(secret_access_key):
            raise StageError("ACCESS_KEY_ID and SECRET_ACCESS_KEY must be given together")
        if session_token and not access_key_id:
            raise StageError("SESSION_TOKEN needs ACCESS_KEY_ID and SECRET_ACCESS_KEY")
        self.bucket = bucket
        self.root = root
        self.region = region
        self._endpoint = _Endpoint(endpoint_url, bucket, region)
        self.endpoint_url = endpoint_url
        self._credentials: _Credentials | None = None
        self._signer: _Signer | None = None
        if access_key_id and secret_access_key:
            self._credentials = _Credentials(access_key_id, secret_access_key, session_token or None)
            self._signer = _Signer(self._credentials, region)
        self._client = _Client(self._endpoint, self._signer)
        fs_options: dict[str, object] = {"region": region}
        if endpoint_url is not None:
            fs_options["endpoint_override"] = self._endpoint.netloc
            fs_options["scheme"] = self._endpoint.scheme
        if self._credentials is not None:
            fs_options["access_key"] = self._credentials.access_key
            fs_options["secret_key"] = self._credentials.secret_key
            if self._credentials.session_token:
                fs_options["session_token"] = self._credentials.session_token
        else:
            # Never fall back to the server's own AWS credentials (environment, ~/.aws, instance
            # role): a stage without credentials must not borrow the operator's access.
            fs_options["anonymous"] = True
        self._fs = pafs.S3FileSystem(**fs_options)

    def __repr__(self) -> str:
        endpoint = f", endpoint={self.endpoint_url!r}" if self.endpoint_url else ""
        return f"S3Backend('s3://{self.bucket}/{self.root}'{endpoint}, region={self.region!r})"

    __str__ = __repr__

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> S3Backend:
        unknown = sorted(set(options) - OPTION_KEYS)
        if unknown:
            raise StageError(
                f"Unknown S3 option(s): {', '.join(name[:40] for name in unknown)} "
                f"(supported: {', '.join(sorted(OPTION_KEYS))})"
            )
        parts = urlsplit(url)
        if parts.scheme.lower() != "s3":
            raise StageError("An S3 URL must start with s3://")
        if "@" in parts.netloc or parts.query or parts.fragment or not parts.netloc:
            # Nothing of the URL is echoed: it may carry credentials.
            raise StageError("An S3 URL must look like s3://bucket/path/ (no user, query or fragment)")

        def option(name: str) -> str | None:
            value = options.get(name)
            return value if value else None

        return cls(
            parts.netloc,
            parts.path[1:] if parts.path.startswith("/") else parts.path,
            endpoint_url=option("ENDPOINT_URL"),
            access_key_id=option("ACCESS_KEY_ID"),
            secret_access_key=option("SECRET_ACCESS_KEY"),
            region=option("REGION") or DEFAULT_REGION,
            session_token=option("SESSION_TOKEN"),
        )

    # -- helpers --------------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        validate_key(key)
        return self.root + key

    def _where(self, object_key: str) -> str:
        return f"s3://{self.bucket}/{object_key}"

    def _scrub(self, text: str) -> str:
        for secret in self._credentials.secrets() if self._credentials else []:
            text = text.replace(secret, "***")
        return text

    def _denied(self, object_key: str) -> StorageError:
        return StorageError(
            f"Access denied by the S3 endpoint for {self._where(object_key)}: "
            "check ACCESS_KEY_ID / SECRET_ACCESS_KEY"
        )

    def _unreachable(self, object_key: str, exc: OSError) -> StorageError:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, socket.timeout | TimeoutError):
            reason = "timed out"
        return StorageError(
            f"Cannot reach the S3 endpoint for {self._where(object_key)}: {self._scrub(reason)}"
        )

    def _call(
        self,
        client: _Client,
        method: str,
        object_key: str,
        query: Sequence[tuple[str, str]] = (),
        **kwargs: object,
    ) -> _Response:
        try:
            return client.request(method, object_key, query, **kwargs)  # type: ignore[arg-type]
        except OSError as exc:
            raise self._unreachable(object_key, exc) from None

    def _check(self, response: _Response, key: str, object_key: str, action: str) -> None:
        """Raise the StorageError for a failed response (``action`` as in 'Cannot <action> key')."""
        if 200 <= response.status < 300:
            return
        code = response.error_code()
        if response.status == 403 or code in _AUTH_CODES:
            raise self._denied(object_key)
        if code == "NoSuchBucket":
            raise StorageError(f"Bucket does not exist: s3://{self.bucket}")
        if response.status == 404 and action in ("read", "stat"):
            raise _missing(key)
        detail = f"{code} (HTTP {response.status})" if code else f"HTTP {response.status}"
        raise StorageError(f"Cannot {action} {key or self._where(object_key)}: {self._scrub(detail)}")

    def _translate(self, exc: OSError, key: str, object_key: str) -> StorageError:
        """Turn a pyarrow OSError into a StorageError naming the bucket and key only."""
        text = str(exc)
        if isinstance(exc, FileNotFoundError) or "Path does not exist" in text or "NoSuchKey" in text:
            return _missing(key)
        if any(marker in text for marker in _AUTH_MARKERS):
            return self._denied(object_key)
        if "NoSuchBucket" in text or "NO_SUCH_BUCKET" in text:
            return StorageError(f"Bucket does not exist: s3://{self.bucket}")
        return StorageError(f"S3 error for {self._where(object_key)}: {self._scrub(text)[:300]}")

    def _head(self, key: str) -> StagedFile:
        object_key = self._object_key(key)
        response = self._call(self._client, "HEAD", object_key)
        self._check(response, key, object_key, "stat")
        try:
            size = int(response.headers.get("content-length", ""))
            modified = parsedate_to_datetime(response.headers.get("last-modified", ""))
        except (TypeError, ValueError):
            raise StorageError(f"Cannot stat {key}: incomplete reply from the S3 endpoint") from None
        if modified.tzinfo is None:
            modified = modified.replace(tzinfo=UTC)
        return StagedFile(
            key=key,
            size=size,
            etag=_etag(response.headers.get("etag")),
            last_modified=_whole_seconds(modified),
        )

    # -- reading --------------------------------------------------------------------------------

    def stat(self, key: str) -> StagedFile:
        return self._head(key)

    def _open(self, key: str, random_access: bool) -> pa.NativeFile:
        object_key = self._object_key(key)
        path = f"{self.bucket}/{object_key}"
        try:
            if random_access:
                return self._fs.open_input_file(path)
            return self._fs.open_input_stream(path)
        except OSError as exc:
            raise self._translate(exc, key, object_key) from None

    def open_input(self, key: str) -> pa.NativeFile:
        return self._open(key, random_access=True)

    def open_input_stream(self, key: str) -> pa.NativeFile:
        return self._open(key, random_access=False)

    def filesystem_and_path(self, key: str) -> tuple[pafs.FileSystem, str]:
        self._head(key)  # a missing file is reported now, in our words
        return self._fs, f"{self.bucket}/{self.root}{key}"

    def presign(
        self, key: str, method: str, expire_seconds: int, content_type: str | None = None
    ) -> PresignedRequest | None:
        object_key = self._object_key(key)
        method = method.upper()
        if method not in ("GET", "PUT"):
            raise StorageError(f"Cannot presign {method} requests for S3 (only GET and PUT)")
        if not 1 <= expire_seconds <= MAX_PRESIGN_SECONDS:
            raise StorageError(f"EXPIRE must be between 1 and {MAX_PRESIGN_SECONDS} seconds for S3")
        if self._signer is None:
            return None  # anonymous access: the server signs its own URL instead
        headers = {"host": self._endpoint.netloc}
        send: dict[str, str] = {}
        if method == "PUT" and content_type:
            if any(ch in content_type for ch in "\r\n") or not content_type.isprintable():
                raise StorageError("CONTENT_TYPE must be a printable header value")
            headers["content-type"] = content_type
            send["Content-Type"] = content_type
        path = self._endpoint.path(object_key)
        query = self._signer.presign_query(method, path, headers, expire_seconds)
        encoded = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in query)
        return PresignedRequest(method=method, url=f"{self._endpoint.url}{path}?{encoded}", headers=send)

    # -- listing --------------------------------------------------------------------------------

    def list_files(self, prefix: str) -> Iterator[StagedFile]:
        validate_prefix(prefix)  # eagerly, so a bad prefix fails at the call, not at first next()
        return self._iter_listing(prefix)

    def _iter_listing(self, prefix: str) -> Iterator[StagedFile]:
        full_prefix = self.root + prefix
        token: str | None = None
        while True:
            query = [("list-type", "2"), ("prefix", full_prefix), ("encoding-type", "url")]
            if token:
                query.append(("continuation-token", token))
            response = self._call(self._client, "GET", "", query)
            self._check(response, "", full_prefix, "list")
            try:
                root = _parse_xml(response.body)
            except (ET.ParseError, ValueError):
                raise StorageError(f"Cannot list {self._where(full_prefix)}: unreadable reply") from None
            yield from self._page_entries(root)
            token = _child_text(root, "NextContinuationToken")
            if _child_text(root, "IsTruncated") != "true" or not token:
                return

    def _page_entries(self, page: ET.Element) -> Iterator[StagedFile]:
        for item in _children(page, "Contents"):
            object_key = unquote_plus(_child_text(item, "Key") or "")
            if not object_key.startswith(self.root):
                continue
            key = object_key[len(self.root) :]
            try:
                validate_key(key)  # directory markers ('x/') and unaddressable names are skipped
            except BadStagePath:
                continue
            try:
                size = int(_child_text(item, "Size") or "")
                modified = datetime.fromisoformat(
                    (_child_text(item, "LastModified") or "").replace("Z", "+00:00")
                )
            except ValueError:
                continue
            if modified.tzinfo is None:
                modified = modified.replace(tzinfo=UTC)
            yield StagedFile(
                key=key,
                size=size,
                etag=_etag(_child_text(item, "ETag")),
                last_modified=_whole_seconds(modified),
            )

    # -- writing --------------------------------------------------------------------------------

    def open_output(self, key: str) -> AbstractContextManager[BinaryIO]:
        object_key = self._object_key(key)  # eagerly: a bad key fails before the with block
        return self._upload(key, object_key)

    @contextmanager
    def _upload(self, key: str, object_key: str) -> Iterator[BinaryIO]:
        writer = _S3Writer(self, key, object_key)
        try:
            yield cast(BinaryIO, writer)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        finally:
            writer.close()
            writer.release()

    # -- deleting -------------------------------------------------------------------------------

    def delete(self, keys: Iterable[str]) -> int:
        checked = [(key, self._object_key(key)) for key in keys]  # all keys before any request
        existing = []
        for key, object_key in dict(checked).items():
            response = self._call(self._client, "HEAD", object_key)
            if response.status == 404:
                continue
            self._check(response, key, object_key, "delete")
            existing.append((key, object_key))
        return self._delete_objects(existing)

    def delete_prefix(self, prefix: str) -> int:
        listed = [(entry.key, self.root + entry.key) for entry in self.list_files(prefix)]
        return self._delete_objects(listed)

    def _delete_objects(self, targets: Sequence[tuple[str, str]]) -> int:
        deleted = 0
        for start in range(0, len(targets), DELETE_BATCH):
            batch = targets[start : start + DELETE_BATCH]
            objects = "".join(
                f"<Object><Key>{xml_escape(object_key)}</Key></Object>" for _, object_key in batch
            )
            document = f"<Delete><Quiet>true</Quiet>{objects}</Delete>".encode()
            headers = {
                "content-type": "application/xml",
                "content-md5": base64.b64encode(hashlib.md5(document, usedforsecurity=False).digest()).decode(
                    "ascii"
                ),
            }
            first_key, first_object = batch[0]
            response = self._call(self._client, "POST", "", [("delete", "")], headers=headers, body=document)
            self._check(response, first_key, first_object, "delete")
            failed = self._delete_errors(response)
            if failed:
                code, object_key = failed[0]
                if code in _AUTH_CODES:
                    raise self._denied(object_key)
                key = object_key[len(self.root) :]
                raise StorageError(f"Cannot delete {key}: {code} ({len(failed)} file(s) not deleted)")
            deleted += len(batch)
        return deleted

    @staticmethod
    def _delete_errors(response: _Response) -> list[tuple[str, str]]:
        try:
            root = _parse_xml(response.body) if response.body.strip() else None
        except (ET.ParseError, ValueError):
            raise StorageError("Cannot delete: unreadable reply from the S3 endpoint") from None
        if root is None:
            return []
        return [
            (_child_text(error, "Code") or "unknown error", _child_text(error, "Key") or "")
            for error in _children(root, "Error")
        ]
