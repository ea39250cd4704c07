"""Abort the multipart uploads that writers killed mid-way (kill -9) left open.

An upload that is neither completed nor aborted keeps its parts in the bucket: billed, invisible
to ListObjectsV2, and kept for ever unless the bucket has an AbortIncompleteMultipartUpload
lifecycle rule. Aborting one never touches a finished object; a writer still using it only fails
(NoSuchUpload) and publishes nothing, so a wrong guess costs a failed COPY, never data.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from stages.errors import StorageError
from stages.storage.s3_http import BucketAccess, Client, child_elements, child_text, parse_xml

# ``Initiated`` is when an upload started, not its last part: a long unload of another server
# sharing the prefix may still be busy after an hour, so the backend's sweep waits at least a day.
MIN_UPLOAD_AGE_SECONDS = 24 * 3600.0


def _initiated(text: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat((text or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _open_uploads(backend: BucketAccess, client: Client) -> Iterator[tuple[str, str, datetime | None]]:
    """(object key, upload id, initiated) of every open upload under the backend's root."""
    markers: list[tuple[str, str]] = []
    while True:
        query = [("uploads", ""), ("prefix", backend.root), ("encoding-type", "url"), *markers]
        response = backend.call(client, "GET", "", query)
        backend.check(response, "", backend.root, "list the uploads of")
        try:
            page = parse_xml(response.body)
        except (ET.ParseError, ValueError):
            where = f"s3://{backend.bucket}/{backend.root}"
            raise StorageError(f"Cannot list the uploads of {where}: unreadable reply") from None
        for upload in child_elements(page, "Upload"):
            key, upload_id = child_text(upload, "Key"), child_text(upload, "UploadId")
            if key and upload_id:
                yield unquote_plus(key), upload_id, _initiated(child_text(upload, "Initiated"))
        key_marker, id_marker = child_text(page, "NextKeyMarker"), child_text(page, "NextUploadIdMarker")
        if child_text(page, "IsTruncated") != "true" or not (key_marker or id_marker):
            return
        markers = [("key-marker", unquote_plus(key_marker or "")), ("upload-id-marker", id_marker or "")]


def abort_stale_uploads(
    backend: BucketAccess, client: Client, min_age_seconds: float, is_live: Callable[[str], bool]
) -> int:
    """Abort the open uploads under the backend's root started ``min_age_seconds`` ago or earlier.

    ``is_live(object_key)`` says this process is writing that key now: its uploads are kept.

    Returns:
        How many uploads were aborted.
    """
    now = datetime.now(UTC)
    stale = [
        (key, upload_id)
        for key, upload_id, initiated in _open_uploads(backend, client)
        if key.startswith(backend.root)
        and initiated is not None
        and (now - initiated).total_seconds() >= min_age_seconds
        and not is_live(key)
    ]
    aborted = 0
    for key, upload_id in stale:
        response = backend.call(client, "DELETE", key, [("uploadId", upload_id)])
        if response.status in (200, 204):
            aborted += 1
        elif response.status != 404:  # 404: finished or aborted meanwhile
            backend.check(response, "", key, "abort the upload of")
    return aborted
