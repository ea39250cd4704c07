"""Basic -> Bearer authentication as the ADBC and JDBC Flight SQL drivers speak it.

The Handshake RPC must exist (a pass-through ServerAuthHandler); the real work happens in a
middleware that sees every call's headers. Tokens are random and opaque; only their SHA-256 is
kept, with the user and when the token was issued and last used.

Expiry slides: a token lives ``idle_seconds`` after its last call, and never expires while its
session is running a call or streaming a result (a long COPY outlives any window). An optional
absolute lifetime is enforced only when a statement would start outside a transaction that has
done work, so it never cuts open work short either: actions (BeginTransaction, EndTransaction,
CloseSession) and DoGet of a result already computed pass, which lets ADBC's commit (EndTransaction
then BeginTransaction) succeed, and the next statement is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import pyarrow.flight as flight

from engine import EngineError
from flight.throttle import LoginThrottle

MIDDLEWARE_KEY = "auth"
# Calls that never start a statement: the absolute token lifetime lets them through (see above).
_LIFETIME_EXEMPT = (flight.FlightMethod.DO_ACTION, flight.FlightMethod.DO_GET)
WRONG_CREDENTIALS = "Invalid user name or password"
TOKEN_EXPIRED = "Token expired: connect again"
TOKEN_INVALID = "Invalid or expired token: connect again"
# Expired tokens remembered (by hash) to say "expired" rather than "invalid"; bounded.
_REMEMBER_EXPIRED = 10_000


class Activity(NamedTuple):
    """What the token store needs to know about a token's session."""

    busy: bool  # a call is running or a result is being streamed
    in_transaction: bool  # a transaction that has run a statement is open
    last_used: float


@dataclass
class TokenInfo:
    user: str
    issued_at: float
    last_seen: float
    generation: int | None = None  # the user's token generation it was issued at (SharedTokens)


# How long a node trusts a user's token generation it read: a DROP USER or password change on
# another node ends the user's tokens here within this many seconds.
GENERATION_TTL = 1.0


class SharedTokens:
    """Bearer tokens that every node sharing one catalog verifies (issue 14).

    ``sf1.<user>.<generation>.<issued unix>.<nonce>.<HMAC-SHA256>`` signed with a key stored in the
    shared catalog. A node that never saw a token adopts it once the signature holds and the user's
    generation (bumped by CREATE USER, password changes and DROP USER on any node) still matches;
    a token it knows is refused once the generation moved on (read at most every GENERATION_TTL).
    """

    PREFIX = "sf1"

    def __init__(
        self,
        key: bytes,
        generation: Callable[[str], int],
        ttl: float = GENERATION_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key
        self._generation = generation
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, float]] = {}

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, user: str, generation: int) -> str:
        name = base64.urlsafe_b64encode(user.encode()).rstrip(b"=").decode()
        body = f"{self.PREFIX}.{name}.{generation}.{int(time.time())}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._mac(body)}"

    def verify(self, token: str) -> tuple[str, int, float] | None:
        """(user, generation, issued unix time) of a token this catalog's key signed, else None."""
        parts = token.split(".")
        if len(parts) != 6 or parts[0] != self.PREFIX:
            return None
        body, mac = token.rpartition(".")[0], parts[5]
        if not hmac.compare_digest(self._mac(body), mac):
            return None
        try:
            user = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode()
            return user, int(parts[2]), float(parts[3])
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None

    def current(self, user: str, *, fresh: bool = False) -> int:
        """The user's token generation, from the catalog at most every ``ttl`` seconds."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(user)
        if cached is not None and not fresh and now - cached[1] < self._ttl:
            return cached[0]
        try:
            generation = self._generation(user)
        except Exception:  # the catalog is down: refuse to vouch for anyone, say why
            raise flight.FlightUnavailableError("The catalog is unreachable: try again") from None
        with self._lock:
            if len(self._cache) > _REMEMBER_EXPIRED:
                self._cache.clear()
            self._cache[user] = (generation, now)
        return generation


class TokenStore:
    def __init__(
        self,
        idle_seconds: int,
        max_lifetime_seconds: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = idle_seconds
        self.max_lifetime = max_lifetime_seconds or None
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[bytes, TokenInfo] = {}
        self._expired: OrderedDict[bytes, None] = OrderedDict()
        self._closing: list[bytes] = []
        self.shared: SharedTokens | None = None  # several nodes: see share()
        # Set by the server: the session registry's view of a token's session (None: no session).
        self.activity: Callable[[bytes], Activity | None] = lambda key: None

    @staticmethod
    def key(token: str) -> bytes:
        """What the store (and the session registry) keys a token by: its SHA-256."""
        return hashlib.sha256(token.encode()).digest()

    def share(self, shared: SharedTokens) -> None:
        """Issue signed tokens every node verifies, and refuse those whose user changed anywhere."""
        self.shared = shared

    def issue(self, user: str) -> str:
        generation = None
        if self.shared is not None:
            generation = self.shared.current(user, fresh=True)
            token = self.shared.issue(user, generation)
        else:
            token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._tokens[self.key(token)] = TokenInfo(user, now, now, generation)
        return token

    def _shared_check(self, token: str) -> None:
        """Adopt a token another node issued, or drop one whose user changed on any node."""
        assert self.shared is not None
        key = self.key(token)
        with self._lock:
            info = self._tokens.get(key)
        if info is None:
            claims = self.shared.verify(token)
            if claims is None:
                return  # not one of ours: unknown, as before
            user, generation, issued = claims
            if self.shared.current(user) != generation:
                return
            now = self._clock()
            with self._lock:
                if key not in self._tokens and key not in self._expired:
                    age = max(0.0, time.time() - issued)
                    self._tokens[key] = TokenInfo(user, now - age, now, generation)
            return
        if info.generation is not None and self.shared.current(info.user) != info.generation:
            with self._lock:
                if self._tokens.pop(key, None) is not None:
                    self._closing.append(key)  # its session is closed by the next purge

    def _is_expired(self, info: TokenInfo, now: float, activity: Activity | None, lifetime: bool) -> bool:
        busy = activity is not None and activity.busy
        last = max(info.last_seen, activity.last_used if activity else 0.0)
        if not busy and now - last > self.ttl:
            return True
        if lifetime and self.max_lifetime is not None and now - info.issued_at > self.max_lifetime:
            return not (busy or (activity is not None and activity.in_transaction))
        return False

    def _bury(self, key: bytes) -> None:
        del self._tokens[key]
        self._closing.append(key)  # its session is closed by the next purge
        self._expired[key] = None
        while len(self._expired) > _REMEMBER_EXPIRED:
            self._expired.popitem(last=False)

    def check(self, token: str, *, lifetime: bool = True) -> str | None:
        """The token's user, extending its life; None if unknown or expired.

        ``lifetime``: also enforce the absolute lifetime (the caller is about to start a statement).
        """
        if self.shared is not None:
            self._shared_check(token)
        key = self.key(token)
        now = self._clock()
        with self._lock:
            info = self._tokens.get(key)
            if info is None:
                return None
            if not self._is_expired(info, now, None, lifetime):
                info.last_seen = now
                return info.user
        # Looks expired by its own clock: ask the session (outside our lock) whether work is open.
        activity = self.activity(key)
        with self._lock:
            info = self._tokens.get(key)
            if info is None:
                return None
            if self._is_expired(info, now, activity, lifetime):
                self._bury(key)
                return None
            info.last_seen = now
            return info.user

    def was_expired(self, token: str) -> bool:
        with self._lock:
            return self.key(token) in self._expired

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(self.key(token), None)

    def revoke_user(self, user: str, keep: bytes | None = None) -> list[bytes]:
        # The kept token (the caller that changed its own password) moves to the new generation
        # here; other nodes refuse it, as they do the user's other tokens.
        generation = self.shared.current(user, fresh=True) if self.shared is not None and keep else None
        with self._lock:
            keys = [k for k, v in self._tokens.items() if v.user == user and k != keep]
            for k in keys:
                del self._tokens[k]
            kept = self._tokens.get(keep) if keep is not None else None
            if (
                kept is not None
                and kept.user == user
                and kept.generation is not None
                and generation is not None
            ):
                kept.generation = generation
        return keys

    def purge_expired(self) -> list[bytes]:
        """Bury idle tokens; returns every token buried since the last purge (to close sessions).

        The absolute lifetime is left to :meth:`check`: enforcing it here could land between
        ADBC's EndTransaction and BeginTransaction and fail a commit that succeeded.
        """
        now = self._clock()
        with self._lock:
            candidates = [k for k, v in self._tokens.items() if self._is_expired(v, now, None, False)]
        activities = {k: self.activity(k) for k in candidates}
        with self._lock:
            for k in candidates:
                info = self._tokens.get(k)
                if info is not None and self._is_expired(info, now, activities[k], False):
                    self._bury(k)
            purged, self._closing = self._closing, []
        return purged


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
    def __init__(
        self,
        tokens: TokenStore,
        authenticate: Callable[[str, str], bool],
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.tokens = tokens
        self._authenticate = authenticate
        self.throttle = throttle or LoginThrottle()
        # A client that sends Basic on every call should not pay a password hash each time.
        self._basic_cache: dict[bytes, tuple[str, str, float]] = {}
        self._lock = threading.Lock()
        self.on_failed_login: Callable[[], None] = lambda: None  # counted by /metrics

    def start_call(self, info: flight.CallInfo, headers: dict[str, list[str]]) -> CallAuth:
        values = headers.get("authorization") or headers.get("Authorization") or []
        if not values:
            raise flight.FlightUnauthenticatedError("Authentication required: send Basic credentials")
        scheme, _, credentials = values[0].partition(" ")
        scheme = scheme.lower()
        if scheme == "basic":
            return self._basic(credentials.strip(), info.method == flight.FlightMethod.HANDSHAKE)
        if scheme == "bearer":
            user = self.tokens.check(credentials.strip(), lifetime=info.method not in _LIFETIME_EXEMPT)
            if user is None:
                expired = self.tokens.was_expired(credentials.strip())
                raise flight.FlightUnauthenticatedError(TOKEN_EXPIRED if expired else TOKEN_INVALID)
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
        # During a backoff delay the password is not even hashed; the answer is the same.
        try:
            ok = self.throttle.attempt(user, lambda: self._authenticate(user, password))
        except EngineError:  # the shared catalog (users, the throttle's records) is down: say so
            raise flight.FlightUnavailableError("The catalog is unreachable: try again") from None
        if not ok:
            self.on_failed_login()
            raise flight.FlightUnauthenticatedError(WRONG_CREDENTIALS)
        token = self.tokens.issue(user)
        if not handshake:
            now = time.monotonic()
            with self._lock:
                for key in [k for k, v in self._basic_cache.items() if v[2] <= now]:
                    del self._basic_cache[key]
                self._basic_cache[cache_key] = (user, token, now + 60)
        return CallAuth(user, token, send_token=True)


class PassThroughAuthHandler(flight.ServerAuthHandler):
    """Accepts the Handshake RPC; the middleware has already checked the headers."""

    def authenticate(self, outgoing: flight.ServerAuthSender, incoming: flight.ServerAuthReader) -> None:
        return None

    def is_valid(self, token: bytes) -> str:
        return ""
