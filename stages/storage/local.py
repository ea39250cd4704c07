"""Stage files in a local directory.

Every operation walks the key one component at a time with ``O_NOFOLLOW`` relative to the
parent's directory fd, so a symlink anywhere under the root is refused, and swapping a directory
for a symlink between a check and the open cannot redirect us (no check-then-open race).
Users cannot create symlinks (uploads go through the server); this guards against operator
mistakes and anything else that writes into the data directory.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat as st
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.fs as pafs

from stages.errors import BadStagePath, StageError, StorageError
from stages.paths import MAX_KEY_BYTES, clean_rel_path, validate_key, validate_prefix
from stages.storage.base import PresignedRequest, StagedFile, StorageBackend

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted in the tree must not hang the server; cleared after fstat.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_RE = re.compile(r"^\..*\.tmp-[0-9a-f]{16}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CREATE_ATTEMPTS = 3


class _NotFound(Exception):
    """Internal: a path component is missing (or is a file where a directory is needed)."""


def _missing(key: str) -> StorageError:
    return StorageError(f"File does not exist: {key}")


def _symlink_refused(key: str) -> BadStagePath:
    return BadStagePath(f"Invalid stage path '{key}': refusing to follow a symbolic link in storage")


def _staged(key: str, info: os.stat_result) -> StagedFile:
    # A new inode on every atomic write makes the etag change even when size and mtime do not.
    etag = f"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}"
    modified = _EPOCH + timedelta(microseconds=info.st_mtime_ns // 1000)
    return StagedFile(key=key, size=info.st_size, etag=etag, last_modified=modified)


def _listable(name: str) -> bool:
    """Entries that are not valid key segments cannot be addressed, so they are not listed."""
    if _TEMP_RE.match(name):
        return False
    try:
        return clean_rel_path(name) == name
    except BadStagePath:
        return False


@contextmanager
def _write_errors(key: str) -> Iterator[None]:
    """Report our own I/O failures (flush, fsync, rename) as StorageError."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"Cannot write {key}: {exc.strerror or exc}") from exc


class LocalBackend(StorageBackend):
    """Files under ``root`` (created if missing); keys map to relative paths."""

    scheme = "file"

    def __init__(self, root: str | Path) -> None:
        os.makedirs(root, exist_ok=True)
        self.root = os.path.realpath(root)
        # Temp names of this process's writes in progress: the sweep never touches them, whatever
        # their age (an unload may wait a long time between two batches).
        self._live_temps: set[str] = set()
        self._live_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalBackend({self.root!r})"

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> LocalBackend:
        if options:
            raise StageError(f"Local storage takes no options (got {', '.join(sorted(options))})")
        parts = urlsplit(url)
        if not parts.scheme:
            return cls(url)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise StageError("A local storage URL must look like file:///absolute/path/")
        # Operator configuration, not user input: percent-decoding a file URL is standard here.
        return cls(unquote(parts.path))

    # -- key checks and directory walking -------------------------------------------------------

    def _check_key(self, key: str) -> list[str]:
        validate_key(key)
        parts = key.split("/")
        if _TEMP_RE.match(parts[-1]):
            # Such names are hidden from listings, so a user file with one would vanish.
            raise BadStagePath(f"Invalid stage path '{key}': name is reserved for temporary files")
        return parts

    def _open_root(self) -> int:
        try:
            return os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            raise StorageError(f"Storage root is not usable: {exc.strerror}") from exc

    def _explain(self, dir_fd: int, name: str, key: str, exc: OSError) -> Exception:
        """Turn a failed open of ``name`` into symlink refusal, not-found, or a storage error."""
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            info = None
        if info is not None and st.S_ISLNK(info.st_mode):
            return _symlink_refused(key)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return _NotFound(key)
        return StorageError(f"Cannot access {key}: {exc.strerror}")

    def _open_dir_at(self, dir_fd: int, name: str, key: str, create: bool) -> int:
        if create:
            try:
                os.mkdir(name, dir_fd=dir_fd)
            except FileExistsError:
                pass  # already there (or raced with another writer): the open below decides
            except OSError as exc:
                raise self._explain(dir_fd, name, key, exc) from exc
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise self._explain(dir_fd, name, key, exc) from exc

    def _walk(self, dir_parts: Sequence[str], key: str, create: bool = False) -> int:
        """fd of ``root/dir_parts...``; raises _NotFound, BadStagePath or StorageError."""
        fd = self._open_root()
        try:
            for name in dir_parts:
                child = self._open_dir_at(fd, name, key, create)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _lstat_file(self, key: str) -> tuple[int, os.stat_result]:
        """(parent dir fd, lstat) of a regular file; the caller closes the fd."""
        parts = self._check_key(key)
        try:
            dir_fd = self._walk(parts[:-1], key)
        except _NotFound:
            raise _missing(key) from None
        try:
            info = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            os.close(dir_fd)
            raise _missing(key) from None
        if st.S_ISLNK(info.st_mode) or not st.S_ISREG(info.st_mode):
            os.close(dir_fd)
            raise _symlink_refused(key) if st.S_ISLNK(info.st_mode) else _missing(key)
        return dir_fd, info

    # -- reading --------------------------------------------------------------------------------

    def stat(self, key: str) -> StagedFile:
        dir_fd, info = self._lstat_file(key)
        os.close(dir_fd)
        return _staged(key, info)

    def _open_read_fd(self, key: str) -> int:
        parts = self._check_key(key)
        try:
            dir_fd = self._walk(parts[:-1], key)
        except _NotFound:
            raise _missing(key) from None
        try:
            fd = os.open(parts[-1], _READ_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            problem = self._explain(dir_fd, parts[-1], key, exc)
            raise (_missing(key) if isinstance(problem, _NotFound) else problem) from None
        finally:
            os.close(dir_fd)
        if not st.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise _missing(key)
        os.set_blocking(fd, True)
        return fd

    def open_input(self, key: str) -> pa.NativeFile:
        # OSFile takes ownership of the fd we opened safely: no second path lookup.
        return pa.OSFile(self._open_read_fd(key), mode="r")

    def open_input_stream(self, key: str) -> pa.NativeFile:
        return pa.OSFile(self._open_read_fd(key), mode="r")

    def filesystem_and_path(self, key: str) -> tuple[pafs.FileSystem, str]:
        # pyarrow opens by path and follows symlinks, so this checks the path now; the remaining
        # window only matters if something other than the server can write under the root.
        dir_fd, _ = self._lstat_file(key)
        os.close(dir_fd)
        return pafs.LocalFileSystem(), os.path.join(self.root, key)

    def presign(
        self, key: str, method: str, expire_seconds: int, content_type: str | None = None
    ) -> PresignedRequest | None:
        self._check_key(key)
        return None  # no native presigning: the server's HTTP endpoint signs instead

    # -- listing --------------------------------------------------------------------------------

    def list_files(self, prefix: str) -> Iterator[StagedFile]:
        validate_prefix(prefix)  # eagerly, so a bad prefix fails at the call, not at first next()
        return self._iter_prefix(prefix)

    def _iter_prefix(self, prefix: str) -> Iterator[StagedFile]:
        head, _, partial = prefix.rpartition("/")
        try:
            dir_fd = self._walk(head.split("/") if head else [], prefix)
        except _NotFound:
            return
        try:
            yield from self._iter_dir(dir_fd, head + "/" if head else "", partial)
        finally:
            os.close(dir_fd)

    @staticmethod
    def _sorted_entries(dir_fd: int, partial: str) -> list[tuple[str, str, bool]]:
        """(sort key, name, is_dir) of the listable entries starting with ``partial``.

        A directory sorts as ``name + '/'``: every key below it starts with that string, so
        walking entries in this order yields keys in plain string order, like an object store.
        """
        found = []
        with os.scandir(dir_fd) as scan:
            for entry in scan:
                if not entry.name.startswith(partial) or entry.is_symlink() or not _listable(entry.name):
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                if is_dir or entry.is_file(follow_symlinks=False):
                    found.append((entry.name + "/" if is_dir else entry.name, entry.name, is_dir))
        found.sort()
        return found

    def _iter_dir(self, dir_fd: int, base: str, partial: str) -> Iterator[StagedFile]:
        for _, name, is_dir in self._sorted_entries(dir_fd, partial):
            if is_dir:
                yield from self._iter_subdir(dir_fd, name, base + name + "/")
                continue
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue  # deleted since the scan
            key = base + name
            if st.S_ISREG(info.st_mode) and len(key.encode("utf-8")) <= MAX_KEY_BYTES:
                yield _staged(key, info)

    def _iter_subdir(self, dir_fd: int, name: str, base: str) -> Iterator[StagedFile]:
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            return  # removed, or swapped for a symlink since the scan: never followed
        try:
            yield from self._iter_dir(child, base, "")
        finally:
            os.close(child)

    # -- writing --------------------------------------------------------------------------------

    def open_output(self, key: str) -> AbstractContextManager[BinaryIO]:
        parts = self._check_key(key)  # eagerly: a bad key fails before the with block
        return self._atomic_write(key, parts)

    @contextmanager
    def _atomic_write(self, key: str, parts: list[str]) -> Iterator[BinaryIO]:
        dir_fd, temp_name, temp_fd = self._create_temp(key, parts)
        try:
            with os.fdopen(temp_fd, "wb") as stream:
                yield stream
                with _write_errors(key):
                    if not stream.closed:  # the caller may have closed it already
                        stream.flush()
                        os.fsync(stream.fileno())
            # rename() within one directory is atomic and replaces the name itself, never
            # following a symlink that may have appeared there.
            with _write_errors(key):
                os.replace(temp_name, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            self._discard_temp(dir_fd, temp_name, parts)
            raise
        finally:
            os.close(dir_fd)
            with self._live_lock:
                self._live_temps.discard(temp_name)

    def _create_temp(self, key: str, parts: list[str]) -> tuple[int, str, int]:
        # Cut the visible part so the temp name stays below NAME_MAX (255 bytes) for long names.
        temp_name = f".{parts[-1][:40]}.tmp-{secrets.token_hex(8)}"
        with self._live_lock:
            self._live_temps.add(temp_name)  # before the file exists, so no sweep can see it unregistered
        try:
            return self._create_temp_file(key, parts, temp_name)
        except BaseException:
            with self._live_lock:
                self._live_temps.discard(temp_name)
            raise

    def _create_temp_file(self, key: str, parts: list[str], temp_name: str) -> tuple[int, str, int]:
        for _ in range(_CREATE_ATTEMPTS):
            try:
                dir_fd = self._walk(parts[:-1], key, create=True)
            except _NotFound:
                # a parent is a file, or a concurrent delete pruned a directory we just made
                continue
            try:
                self._refuse_target(dir_fd, parts[-1], key)
                return dir_fd, temp_name, os.open(temp_name, _TEMP_FLAGS, 0o666, dir_fd=dir_fd)
            except FileNotFoundError:
                os.close(dir_fd)  # a concurrent delete pruned the empty parent: walk again
            except OSError as exc:
                os.close(dir_fd)
                raise StorageError(f"Cannot write {key}: {exc.strerror}") from exc
            except BaseException:
                os.close(dir_fd)
                raise
        raise StorageError(f"Cannot write {key}: a parent is a file, or its directory keeps disappearing")

    @staticmethod
    def _refuse_target(dir_fd: int, name: str, key: str) -> None:
        """Fail before streaming any data if the key names a directory or a symlink."""
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if st.S_ISLNK(info.st_mode):
            raise _symlink_refused(key)
        if not st.S_ISREG(info.st_mode):
            raise StorageError(f"Cannot write {key}: a directory or special file has that name")

    def _discard_temp(self, dir_fd: int, temp_name: str, parts: list[str]) -> None:
        try:
            os.unlink(temp_name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        self._prune_empty_dirs(parts[:-1])

    # -- leftovers of killed writes --------------------------------------------------------------

    def sweep_temp_files(self, min_age_seconds: float) -> int:
        """Delete temp files a killed write left (kill -9 mid-upload), and directories they emptied.

        Only files not written to for ``min_age_seconds`` go, and never one of this process's
        writes in progress: another server sharing the root may be writing one right now.
        """
        cutoff = time.time() - min_age_seconds
        root_fd = self._open_root()
        try:
            return self._sweep_dir(root_fd, cutoff)
        finally:
            os.close(root_fd)

    def _sweep_dir(self, dir_fd: int, cutoff: float) -> int:
        removed = 0
        try:
            with os.scandir(dir_fd) as scan:
                entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in scan]
        except OSError:
            return 0  # unreadable (or removed meanwhile): nothing we could have written is in it
        for name, is_dir in entries:
            if is_dir:
                removed += self._sweep_subdir(dir_fd, name, cutoff)
            elif _TEMP_RE.match(name) and self._stale_temp(dir_fd, name, cutoff):
                try:
                    os.unlink(name, dir_fd=dir_fd)
                    removed += 1
                except FileNotFoundError:
                    pass  # its write finished (renamed) or failed (discarded) meanwhile
        return removed

    def _sweep_subdir(self, dir_fd: int, name: str, cutoff: float) -> int:
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            return 0  # gone, or swapped for a symlink: never followed
        try:
            removed = self._sweep_dir(child, cutoff)
        finally:
            os.close(child)
        if removed:
            try:
                os.rmdir(name, dir_fd=dir_fd)  # only if the sweep emptied it; writers retry a pruned parent
            except OSError:
                pass
        return removed

    def _stale_temp(self, dir_fd: int, name: str, cutoff: float) -> bool:
        with self._live_lock:
            if name in self._live_temps:
                return False
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return False
        return st.S_ISREG(info.st_mode) and info.st_mtime < cutoff

    # -- deleting -------------------------------------------------------------------------------

    def delete(self, keys: Iterable[str]) -> int:
        checked = [(key, self._check_key(key)) for key in keys]  # all keys before any I/O
        deleted = 0
        parents: set[tuple[str, ...]] = set()
        for key, parts in checked:
            if self._delete_one(key, parts):
                deleted += 1
                parents.add(tuple(parts[:-1]))
        # Deepest first, so a parent is tried after all of its children were.
        for dir_parts in sorted(parents, key=len, reverse=True):
            self._prune_empty_dirs(dir_parts)
        return deleted

    def _delete_one(self, key: str, parts: list[str]) -> bool:
        try:
            dir_fd = self._walk(parts[:-1], key)
        except _NotFound:
            return False
        try:
            try:
                info = os.stat(parts[-1], dir_fd=dir_fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return False
            if st.S_ISLNK(info.st_mode):
                raise _symlink_refused(key)
            if not st.S_ISREG(info.st_mode):
                return False  # a directory is not a file: like a missing key
            os.unlink(parts[-1], dir_fd=dir_fd)
            return True
        except FileNotFoundError:
            return False  # deleted concurrently
        except OSError as exc:
            raise StorageError(f"Cannot delete {key}: {exc.strerror}") from exc
        finally:
            os.close(dir_fd)

    def _prune_empty_dirs(self, dir_parts: Sequence[str]) -> None:
        """rmdir the now-empty directories of ``dir_parts``, deepest first, never the root."""
        fds = [self._open_root()]
        try:
            for name in dir_parts:
                try:
                    fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
                except OSError:
                    return
            for depth in range(len(dir_parts), 0, -1):
                try:
                    os.rmdir(dir_parts[depth - 1], dir_fd=fds[depth - 1])
                except OSError:
                    return  # not empty (or already gone): ancestors are not empty either
        finally:
            for fd in fds:
                os.close(fd)
