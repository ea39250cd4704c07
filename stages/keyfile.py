"""Server secrets kept in small files of their own (mode 0600), never in a database.

Used for the presign HMAC secret and the key that encrypts external stages' credentials: a user
who reads the database file's bytes learns neither.
"""

from __future__ import annotations

import os
import secrets
import stat as st
from pathlib import Path

from stages.errors import StageError

KEY_BYTES = 32


class KeyFileError(StageError):
    """A key file is unreadable, has the wrong size, or others may read it."""


def load_or_create_key(path: Path, what: str, size: int = KEY_BYTES) -> bytes:
    """The ``size`` random bytes kept in ``path``, created (0600) on first use.

    Raises:
        KeyFileError: the file is unreadable, has the wrong size, or others may read it.
    """
    try:
        return _read_key(path, what, size)
    except FileNotFoundError:
        pass
    _create_key(path, size)
    return _read_key(path, what, size)


def _read_key(path: Path, what: str, size: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise KeyFileError(f"Cannot read the {what} {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        # Like ssh with private keys: anyone who can read the file holds the secret.
        if not st.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise KeyFileError(
                f"The {what} {path} must be a regular file only its owner can access (chmod 600)"
            )
        key = handle.read(size + 1)
    if len(key) != size:
        raise KeyFileError(f"The {what} {path} is corrupt (expected {size} bytes)")
    return key


def _create_key(path: Path, size: int) -> None:
    """Write a new key atomically; if another process won the race, its key is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(size))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)  # unlike rename, fails if the file appeared meanwhile
        except FileExistsError:
            pass
    finally:
        temp.unlink(missing_ok=True)
