"""The streamed, abortable S3 upload behind ``S3Backend.open_output``.

One part in memory at a time; multipart (or one PutObject) on commit, nothing left on abort.
"""

from __future__ import annotations

import io
import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from xml.sax.saxutils import escape as xml_escape

from stages.errors import StorageError
from stages.storage.s3_http import BucketAccess, Client, Response, child_text, local_name, parse_xml

# The backend's logger name, so one logging setting covers all of S3.
logger = logging.getLogger("stages.storage.s3")

PART_SIZE = 8 * 1024 * 1024  # S3 needs >= 5 MiB for every part but the last
MAX_PARTS = 10_000


class S3Writer(io.BufferedIOBase):
    """A streamed, abortable upload: one part in memory at a time.

    ``close()`` only stops further writes; the object is published by :meth:`commit` (the
    ``with`` block exited cleanly) and never by :meth:`abort`.
    """

    def __init__(self, backend: BucketAccess, key: str, object_key: str) -> None:
        super().__init__()
        self._backend = backend
        self._key = key
        self._object_key = object_key
        self._client = Client(backend.endpoint, backend.signer)  # a connection of its own
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

    def _request(self, method: str, query: Sequence[tuple[str, str]], **kwargs: object) -> Response:
        return self._backend.call(self._client, method, self._object_key, query, **kwargs)

    def _upload_part(self) -> None:
        if self._upload_id is None:
            response = self._request(
                "POST", [("uploads", "")], headers={"content-type": "application/octet-stream"}
            )
            self._backend.check(response, self._key, self._object_key, "start the upload of")
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
        self._backend.check(response, self._key, self._object_key, "write")
        etag = response.headers.get("etag")
        if not etag:
            raise StorageError(f"Cannot write {self._key}: the S3 endpoint returned no part ETag")
        self._parts.append((number, etag))
        self._buffer = bytearray()

    def _find(self, response: Response, name: str) -> str | None:
        try:
            return child_text(parse_xml(response.body), name)
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
            self._backend.check(response, self._key, self._object_key, "write")
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
        self._backend.check(response, self._key, self._object_key, "write")
        # S3 may answer 200 and put the failure in the body.
        try:
            root = parse_xml(response.body) if response.body.strip() else None
        except (ET.ParseError, ValueError):
            root = None
        if root is not None and local_name(root.tag) == "Error":
            code = child_text(root, "Code") or "unknown error"
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
