"""The storage contract every stage backend implements.

Keys are full object keys under the backend root (``stage/user/alice/x.csv``): relative, ``'/'``
separated, already validated by :mod:`stages.paths`. Backends validate them again before any I/O
because a backend must be safe on its own. Listing uses object-store *prefix* semantics on every
backend, so a local directory tree behaves like a bucket.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, ClassVar

import pyarrow as pa
import pyarrow.fs as pafs

from stages.errors import StorageError


@dataclass(frozen=True)
class StagedFile:
    """One stored file.

    Attributes:
        key: full key under the backend root.
        size: size in bytes.
        etag: opaque change token (S3 ETag without quotes, or a local fingerprint); None if unknown.
        last_modified: timezone-aware UTC time.
    """

    key: str
    size: int
    etag: str | None
    last_modified: datetime


@dataclass(frozen=True)
class PresignedRequest:
    """A request a client can send without credentials (PRESIGN output)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)


class StorageBackend(ABC):
    """A place where stage files live (local directory, S3 bucket, ...)."""

    scheme: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> StorageBackend:
        """Build the backend for a stage URL; used by :func:`stages.storage.load_backend`.

        Raises:
            StageError: the URL or an option is not usable by this backend.
        """

    @abstractmethod
    def list_files(self, prefix: str) -> Iterator[StagedFile]:
        """All regular files whose key starts with ``prefix``, recursively, sorted by key.

        ``prefix`` is a string prefix, not a folder: ``'a'`` yields ``a.csv``, ``a/x.csv`` and
        ``ab.csv``. Directories, symlinks and in-progress temporary files are never yielded.

        Raises:
            BadStagePath: the prefix is unsafe. A prefix with no files yields nothing (no error).
            StorageError: the storage cannot be listed.
        """

    @abstractmethod
    def stat(self, key: str) -> StagedFile:
        """Metadata of one file.

        Raises:
            BadStagePath: the key is unsafe (including a symlink on a local backend).
            StorageError: ``File does not exist: <key>`` or another storage failure.
        """

    @abstractmethod
    def open_input(self, key: str) -> pa.NativeFile:
        """Open a file for random access reads (what pyarrow's Parquet reader needs).

        Raises:
            BadStagePath: the key is unsafe.
            StorageError: the file does not exist or cannot be opened.
        """

    @abstractmethod
    def open_input_stream(self, key: str) -> pa.NativeFile:
        """Open a file for sequential reads (CSV/NDJSON readers, downloads).

        Raises:
            BadStagePath: the key is unsafe.
            StorageError: the file does not exist or cannot be opened.
        """

    @abstractmethod
    def open_output(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Write a file atomically: readers see the old file or the complete new one.

        Data is streamed (never buffered whole); it becomes visible under ``key`` only when the
        ``with`` block exits cleanly. If the block raises, nothing is left behind. Missing
        parent "directories" are created. An existing file is replaced.

        Raises:
            BadStagePath: the key is unsafe.
            StorageError: the file cannot be written (e.g. the key is an existing directory).
        """

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> int:
        """Delete files; missing keys are ignored.

        Local backends also remove parent directories that became empty, up to (not including)
        the backend root. All keys are validated before anything is deleted.

        Returns:
            The number of files actually deleted.

        Raises:
            BadStagePath: a key is unsafe.
            StorageError: a file exists but cannot be deleted.
        """

    def delete_prefix(self, prefix: str) -> int:
        """Delete every file :meth:`list_files` yields for ``prefix``.

        Returns:
            The number of files deleted.

        Raises:
            BadStagePath: the prefix is unsafe.
            StorageError: listing or deleting failed.
        """
        # Materialise the keys first: deleting while a listing walks the same tree is fragile.
        keys = [entry.key for entry in self.list_files(prefix)]
        return self.delete(keys)

    def sweep_temp_files(self, min_age_seconds: float) -> int:
        """Remove what writes killed mid-way (kill -9) left behind and nothing will finish.

        Leftovers untouched for less than ``min_age_seconds`` stay (another server sharing the
        storage may still be writing them), as do this process's writes in progress. Backends whose
        writes leave nothing behind keep this default.

        Returns:
            How many leftovers were removed.

        Raises:
            StorageError: the storage cannot be walked.
        """
        return 0

    @abstractmethod
    def filesystem_and_path(self, key: str) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem and path for ``key``, for readers such as ``pyarrow.dataset``.

        Raises:
            BadStagePath: the key is unsafe.
            StorageError: the file does not exist.
        """

    @abstractmethod
    def presign(
        self, key: str, method: str, expire_seconds: int, content_type: str | None = None
    ) -> PresignedRequest | None:
        """A native presigned request, or None when the storage cannot presign.

        With None the server signs its own HTTP URL instead (local storage does this).

        Raises:
            BadStagePath: the key is unsafe.
            StorageError: signing failed.
        """

    def exists(self, key: str) -> bool:
        """Whether a regular file is stored under ``key``.

        Raises:
            BadStagePath: the key is unsafe.
        """
        try:
            self.stat(key)
        except StorageError:
            return False
        return True
