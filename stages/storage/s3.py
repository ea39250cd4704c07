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

The signer is in :mod:`stages.storage.s3_signing`, the HTTP client in :mod:`stages.storage.s3_http`
and the upload writer in :mod:`stages.storage.s3_upload`; this module is the backend itself.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import BinaryIO, cast
from urllib.parse import unquote_plus, urlsplit
from xml.sax.saxutils import escape as xml_escape

import pyarrow as pa
import pyarrow.fs as pafs

from stages.errors import BadStagePath, StageError, StorageError
from stages.paths import clean_rel_path, validate_key, validate_prefix
from stages.storage.base import PresignedRequest, StagedFile, StorageBackend
from stages.storage.s3_http import Client, Endpoint, Response, child_elements, child_text, parse_xml
from stages.storage.s3_signing import Credentials, Signer, uri_encode
from stages.storage.s3_sweep import MIN_UPLOAD_AGE_SECONDS, abort_stale_uploads
from stages.storage.s3_upload import S3Writer

OPTION_KEYS = frozenset({"ENDPOINT_URL", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "REGION", "SESSION_TOKEN"})
DEFAULT_REGION = "us-east-1"
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the SigV4 limit
DELETE_BATCH = 1000  # DeleteObjects limit
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


def _etag(raw: str | None) -> str | None:
    if not raw:
        return None
    return raw.strip().strip('"') or None


def _whole_seconds(moment: datetime) -> datetime:
    # HeadObject reports whole seconds, ListObjectsV2 milliseconds: keep both in agreement.
    return moment.astimezone(UTC).replace(microsecond=0)


class S3Backend(StorageBackend):
    """Objects under ``s3://bucket/root/``; keys map to ``root + key``."""

    scheme = "s3"
    # Below this age an open multipart upload may be another server's long write: see s3_sweep.
    min_upload_age_seconds = MIN_UPLOAD_AGE_SECONDS

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
        self.endpoint = Endpoint(endpoint_url, bucket, region)
        self.endpoint_url = endpoint_url
        self.label = ""  # who uses the bucket, e.g. "stage @s at <endpoint>, ": errors start with it
        self._credentials: Credentials | None = None
        self.signer: Signer | None = None
        if access_key_id and secret_access_key:
            self._credentials = Credentials(access_key_id, secret_access_key, session_token or None)
            self.signer = Signer(self._credentials, region)
        self._client = Client(self.endpoint, self.signer)
        # Object keys this process is uploading now: the sweep never aborts their uploads.
        self._live_keys: Counter[str] = Counter()
        self._live_lock = threading.Lock()
        fs_options: dict[str, object] = {"region": region}
        if endpoint_url is not None:
            fs_options["endpoint_override"] = self.endpoint.netloc
            fs_options["scheme"] = self.endpoint.scheme
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
        return f"{self.label}s3://{self.bucket}/{object_key}"

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

    def call(
        self,
        client: Client,
        method: str,
        object_key: str,
        query: Sequence[tuple[str, str]] = (),
        **kwargs: object,
    ) -> Response:
        """One request; an unreachable endpoint becomes a StorageError (the upload writer uses it too)."""
        try:
            return client.request(method, object_key, query, **kwargs)  # type: ignore[arg-type]
        except OSError as exc:
            raise self._unreachable(object_key, exc) from None

    def check(self, response: Response, key: str, object_key: str, action: str) -> None:
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
        response = self.call(self._client, "HEAD", object_key)
        self.check(response, key, object_key, "stat")
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
            # compression=None: pyarrow would otherwise decompress by extension (a .gz read raw is a .gz).
            return self._fs.open_input_stream(path, compression=None)
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
        if self.signer is None:
            return None  # anonymous access: the server signs its own URL instead
        headers = {"host": self.endpoint.netloc}
        send: dict[str, str] = {}
        if method == "PUT" and content_type:
            if any(ch in content_type for ch in "\r\n") or not content_type.isprintable():
                raise StorageError("CONTENT_TYPE must be a printable header value")
            headers["content-type"] = content_type
            send["Content-Type"] = content_type
        path = self.endpoint.path(object_key)
        query = self.signer.presign_query(method, path, headers, expire_seconds)
        encoded = "&".join(f"{uri_encode(k)}={uri_encode(v)}" for k, v in query)
        return PresignedRequest(method=method, url=f"{self.endpoint.url}{path}?{encoded}", headers=send)

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
            response = self.call(self._client, "GET", "", query)
            self.check(response, "", full_prefix, "list")
            try:
                root = parse_xml(response.body)
            except (ET.ParseError, ValueError):
                raise StorageError(f"Cannot list {self._where(full_prefix)}: unreadable reply") from None
            yield from self._page_entries(root)
            token = child_text(root, "NextContinuationToken")
            if child_text(root, "IsTruncated") != "true" or not token:
                return

    def _page_entries(self, page: ET.Element) -> Iterator[StagedFile]:
        for item in child_elements(page, "Contents"):
            object_key = unquote_plus(child_text(item, "Key") or "")
            if not object_key.startswith(self.root):
                continue
            key = object_key[len(self.root) :]
            try:
                validate_key(key)  # directory markers ('x/') and unaddressable names are skipped
            except BadStagePath:
                continue
            try:
                size = int(child_text(item, "Size") or "")
                modified = datetime.fromisoformat(
                    (child_text(item, "LastModified") or "").replace("Z", "+00:00")
                )
            except ValueError:
                continue
            if modified.tzinfo is None:
                modified = modified.replace(tzinfo=UTC)
            yield StagedFile(
                key=key,
                size=size,
                etag=_etag(child_text(item, "ETag")),
                last_modified=_whole_seconds(modified),
            )

    # -- writing --------------------------------------------------------------------------------

    def open_output(self, key: str) -> AbstractContextManager[BinaryIO]:
        object_key = self._object_key(key)  # eagerly: a bad key fails before the with block
        return self._upload(key, object_key)

    @contextmanager
    def _upload(self, key: str, object_key: str) -> Iterator[BinaryIO]:
        writer = S3Writer(self, key, object_key)
        with self._live_lock:
            self._live_keys[object_key] += 1
        try:
            yield cast(BinaryIO, writer)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        finally:
            writer.close()
            writer.release()
            with self._live_lock:
                self._live_keys[object_key] -= 1
                if self._live_keys[object_key] <= 0:
                    del self._live_keys[object_key]

    def _is_live(self, object_key: str) -> bool:
        with self._live_lock:
            return object_key in self._live_keys

    def sweep_temp_files(self, min_age_seconds: float) -> int:
        """Abort multipart uploads killed writers left open, once they are a day old or older.

        A day at least whatever is asked: an upload's start time is all S3 tells, and another
        server sharing the prefix may run a long unload.
        """
        return abort_stale_uploads(
            self, self._client, max(min_age_seconds, self.min_upload_age_seconds), self._is_live
        )

    # -- deleting -------------------------------------------------------------------------------

    def delete(self, keys: Iterable[str]) -> int:
        checked = [(key, self._object_key(key)) for key in keys]  # all keys before any request
        existing = []
        for key, object_key in dict(checked).items():
            response = self.call(self._client, "HEAD", object_key)
            if response.status == 404:
                continue
            self.check(response, key, object_key, "delete")
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
            response = self.call(self._client, "POST", "", [("delete", "")], headers=headers, body=document)
            self.check(response, first_key, first_object, "delete")
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
    def _delete_errors(response: Response) -> list[tuple[str, str]]:
        try:
            root = parse_xml(response.body) if response.body.strip() else None
        except (ET.ParseError, ValueError):
            raise StorageError("Cannot delete: unreadable reply from the S3 endpoint") from None
        if root is None:
            return []
        return [
            (child_text(error, "Code") or "unknown error", child_text(error, "Key") or "")
            for error in child_elements(root, "Error")
        ]
