"""Basic -> Bearer authentication as the ADBC and JDBC Flight SQL drivers speak it.

The Handshake RPC must exist (a pass-through ServerAuthHandler); the real work happens in a
middleware that sees every call's headers. Tokens are random and opaque; only their SHA-256 is
kept, with the user and an absolute expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow.flight as flight

MIDDLEWARE_KEY = "auth"


@dataclass
class TokenInfo:
    user: str
    expires_at: float


class TokenStore:
    def __init__(self, ttl_seconds: int) -> None:
        self.ttl = ttl_seconds
        self._lock = threading.Lock()
        self._tokens: dict[bytes, TokenInfo] = {}

    @staticmethod
    def key(token: str) -> bytes:
        """What the store (and the session registry) keys a token by: its SHA-256."""
        return hashlib.sha256(token.encode()).digest()

    def issue(self, user: str) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[self.key(token)] = TokenInfo(user, time.monotonic() + self.ttl)
        return token

    def check(self, token: str) -> str | None:
        key = self.key(token)
        with self._lock:
            info = self._tokens.get(key)
            if info is None:
                return None
            if time.monotonic() > info.expires_at:
                del self._tokens[key]
                return None
            return info.user

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(self.key(token), None)

    def revoke_user(self, user: str, keep: bytes | None = None) -> list[bytes]:
        with self._lock:
            keys = [k for k, v in self._tokens.items() if v.user == user and k != keep]
            for k in keys:
                del self._tokens[k]
        return keys

    def purge_expired(self) -> list[bytes]:
        now = time.monotonic()
        with self._lock:
            keys = [k for k, v in self._tokens.items() if now > v.expires_at]
            for k in keys:
                del self._tokens[k]
        return keys


def decode_basic(credentials: str) -> tuple[str, str]:
    # The Go driver sends unpadded base64; Java pads. Accept both.
    padded = credentials + "=" * (-len(credentials) % 4)
    try:
        text = base64.b64decode(padded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise flight.FlightUnauthenticatedError("Malformed Basic credentials") from None
    user, sep, password = text.partition(":")
    if not sep:
        raise flight.FlightUnauthenticatedError("Malformed Basic credentials")
    return user, password


class CallAuth(flight.ServerMiddleware):
    """Per-call state: who is calling, with which token (the session key)."""

    def __init__(self, user: str, token: str, send_token: bool) -> None:
        self.user = user
        self.token = token
        self._send_token = send_token

    def sending_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"} if self._send_token else {}


class AuthMiddlewareFactory(flight.ServerMiddlewareFactory):
    def __init__(self, tokens: TokenStore, authenticate: Callable[[str, str], bool]) -> None:
        self.tokens = tokens
        self._authenticate = authenticate
        # A client that sends Basic on every call should not pay a password hash each time.
        self._basic_cache: dict[bytes, tuple[str, str, float]] = {}
        self._lock = threading.Lock()

    def start_call(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> CallAuth:
        values = headers.get("authorization") or headers.get("Authorization") or []
        if not values:
            raise flight.FlightUnauthenticatedError("Authentication required: send Basic credentials")
        scheme, _, credentials = values[0].partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            return self._basic(credentials.strip(), info.method == flight.FlightMethod.HANDSHAKE)
        if scheme == "bearer":
            user = self.tokens.check(credentials.strip())
            if user is None:
                raise flight.FlightUnauthenticatedError("Invalid or expired token: connect again")
            return CallAuth(
                user, credentials.strip(), send_token=info.method == flight.FlightMethod.HANDSHAKE
            )
        raise flight.FlightUnauthenticatedError(f"Unsupported authorization scheme: {scheme}")

    def _basic(self, credentials: str, handshake: bool) -> CallAuth:
        cache_key = hashlib.sha256(credentials.encode()).digest()
        if not handshake:
            with self._lock:
                cached = self._basic_cache.get(cache_key)
            if cached and time.monotonic() < cached[2] and self.tokens.check(cached[1]) == cached[0]:
                return CallAuth(cached[0], cached[1], send_token=False)
        user, password = decode_basic(credentials)
        if not self._authenticate(user, password):
            raise flight.FlightUnauthenticatedError("Invalid user name or password")
        token = self.tokens.issue(user)
        if not handshake:
            with self._lock:
                self._basic_cache[cache_key] = (user, token, time.monotonic() + 60)
        return CallAuth(user, token, send_token=True)


class PassThroughAuthHandler(flight.ServerAuthHandler):
    """Accepts the Handshake RPC; the middleware has already checked the headers."""

    def authenticate(self, outgoing: flight.ServerAuthSender, incoming: flight.ServerAuthReader) -> None:
        return None

    def is_valid(self, token: bytes) -> str:
        return ""
