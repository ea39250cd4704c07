"""Password hashing with Argon2id (argon2-cffi), constant-time verification."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP minimum parameters (m=19 MiB, t=2, p=1): ~30 ms per login on this class of machine.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verifying against a real hash for unknown users keeps the timing the same as for known ones.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password: str, stored_hash: str | None) -> bool:
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(18)
