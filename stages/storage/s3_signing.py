"""AWS Signature Version 4 for S3: signed request headers and presigned URL queries.

Also the credentials holder, which keeps the secret out of every ``repr``. No I/O happens here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

_UNSIGNED = "UNSIGNED-PAYLOAD"


def uri_encode(text: str, safe: str = "") -> str:
    """RFC 3986 encoding as SigV4 wants it: only ``A-Za-z0-9-_.~`` (plus ``safe``) stay as is."""
    return quote(text, safe="-_.~" + safe)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


class Credentials:
    """Static credentials. Deliberately no dataclass: nothing may print the secret."""

    __slots__ = ("access_key", "secret_key", "session_token")

    def __init__(self, access_key: str, secret_key: str, session_token: str | None) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"

    def secrets(self) -> list[str]:
        return [s for s in (self.access_key, self.secret_key, self.session_token) if s]


class Signer:
    """AWS Signature Version 4 for the ``s3`` service (header and query forms)."""

    def __init__(self, credentials: Credentials, region: str) -> None:
        self._credentials = credentials
        self._region = region

    def __repr__(self) -> str:
        return f"Signer(region={self._region!r})"

    def _scope(self, date: str) -> str:
        return f"{date}/{self._region}/s3/aws4_request"

    def _signature(self, amz_date: str, canonical_request: str) -> str:
        date = amz_date[:8]
        string_to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256",
                amz_date,
                self._scope(date),
                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
            ]
        )
        key = _hmac(("AWS4" + self._credentials.secret_key).encode("utf-8"), date)
        for part in (self._region, "s3", "aws4_request"):
            key = _hmac(key, part)
        return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()

    @staticmethod
    def _canonical(
        method: str, path: str, query: Sequence[tuple[str, str]], headers: Mapping[str, str], payload: str
    ) -> tuple[str, str]:
        canonical_query = "&".join(
            f"{k}={v}" for k, v in sorted((uri_encode(k), uri_encode(v)) for k, v in query)
        )
        names = sorted(headers)
        canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
        signed = ";".join(names)
        return "\n".join([method, path, canonical_query, canonical_headers, signed, payload]), signed

    def sign_headers(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: Mapping[str, str],
        payload_sha256: str,
        now: datetime | None = None,
    ) -> dict[str, str]:
        """Headers to send: ``headers`` plus x-amz-date, x-amz-content-sha256 and Authorization.

        ``path`` is the already URI-encoded request path; ``headers`` must include ``host``.
        """
        amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        signed_headers = {name.lower(): value for name, value in headers.items()}
        signed_headers["x-amz-date"] = amz_date
        signed_headers["x-amz-content-sha256"] = payload_sha256
        if self._credentials.session_token:
            signed_headers["x-amz-security-token"] = self._credentials.session_token
        canonical, signed = self._canonical(method, path, query, signed_headers, payload_sha256)
        signature = self._signature(amz_date, canonical)
        credential = f"{self._credentials.access_key}/{self._scope(amz_date[:8])}"
        signed_headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
        )
        return signed_headers

    def presign_query(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        expires: int,
        now: datetime | None = None,
    ) -> list[tuple[str, str]]:
        """Query parameters of a presigned URL (payload unsigned, as every S3 presigner does)."""
        amz_date = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
        signed_headers = {name.lower(): value for name, value in headers.items()}
        query = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", f"{self._credentials.access_key}/{self._scope(amz_date[:8])}"),
            ("X-Amz-Date", amz_date),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", ";".join(sorted(signed_headers))),
        ]
        if self._credentials.session_token:
            query.append(("X-Amz-Security-Token", self._credentials.session_token))
        canonical, _ = self._canonical(method, path, query, signed_headers, _UNSIGNED)
        query.append(("X-Amz-Signature", self._signature(amz_date, canonical)))
        return query
