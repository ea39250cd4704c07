"""Encrypts external stages' credentials with a server key kept outside the database file.

The key lives in its own 0600 file (default ``<data_dir>/server.key``), so the bytes of the
database file, which a user who slipped past the guard might read, hold only ciphertext.
AES-256-GCM with a random nonce per value; the stage name is authenticated data, so a sealed
value copied onto another stage's row does not open.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stages.keyfile import load_or_create_key

SEALED_PREFIX = "enc:v1:"
_NONCE_BYTES = 12


class CannotDecrypt(Exception):
    """A sealed value does not open with this server key (the key changed, or the value is corrupt)."""


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, path: Path) -> SecretBox:
        """Raises stages.keyfile.KeyFileError when the key file is unusable (refuse to start)."""
        return cls(load_or_create_key(path, "server key"))

    @staticmethod
    def is_sealed(text: str) -> bool:
        return text.startswith(SEALED_PREFIX)

    def seal(self, plaintext: str, context: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, text: str, context: str) -> str:
        """Raises CannotDecrypt."""
        if not self.is_sealed(text):
            raise CannotDecrypt("not a sealed value")
        try:
            raw = base64.urlsafe_b64decode(text[len(SEALED_PREFIX) :])
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode("utf-8"))
            return plain.decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise CannotDecrypt(str(exc) or type(exc).__name__) from None
