"""External stages: URL and CONNECTION checks, endpoint policy against SSRF, masked display."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import NoReturn
from urllib.parse import urlsplit

from engine.errors import StatementRejected
from stages.errors import StageError

CONNECTION_KEYS = {"ENDPOINT_URL", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "REGION", "SESSION_TOKEN"}
# Snowflake / older Databend spellings users arrive with.
_ALIASES = {
    "AWS_KEY_ID": "ACCESS_KEY_ID",
    "AWS_SECRET_KEY": "SECRET_ACCESS_KEY",
    "AWS_TOKEN": "SESSION_TOKEN",
    "ENDPOINT": "ENDPOINT_URL",
}
SECRET_KEYS = {"SECRET_ACCESS_KEY", "SESSION_TOKEN", "ACCESS_KEY_ID"}


def normalize_connection(options: Mapping[str, str]) -> dict[str, str]:
    normalized: dict[str, str] = {}
    for key, value in options.items():
        name = _ALIASES.get(key.upper(), key.upper())
        if name not in CONNECTION_KEYS:
            raise StatementRejected(
                f"Unknown CONNECTION option: {key} (use {', '.join(sorted(CONNECTION_KEYS))})"
            )
        normalized[name] = value
    return normalized


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3":
        raise StatementRejected(
            "External stage URL must be s3://bucket/path/ (other storage is not supported)"
        )
    if not parts.netloc or "@" in parts.netloc or parts.query or parts.fragment:
        raise StatementRejected("External stage URL must look like s3://bucket/path/")
    return url if url.endswith("/") else url + "/"


def _host_port(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StatementRejected("ENDPOINT_URL must look like http(s)://host[:port]")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname.lower(), port


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return bool(
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_endpoint(endpoint: str | None, allowed: Iterable[str]) -> None:
    """Refuse endpoints that are not allowed: loopback, private and metadata addresses need listing."""
    if endpoint is None:
        return  # AWS's own public endpoint
    host, port = _host_port(endpoint)
    allowed_set = {a.strip().lower() for a in allowed if a.strip()}
    if f"{host}:{port}" in allowed_set:
        return
    if allowed_set:
        raise StatementRejected(f"Endpoint {host}:{port} is not in the server's allowed endpoints")
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except OSError:
        raise StatementRejected(f"Endpoint {host}:{port} cannot be resolved") from None
    if any(_is_internal(a) for a in addresses):
        raise StatementRejected(
            f"Endpoint {host}:{port} is a loopback or private address; an administrator must allow it "
            "with --allowed-endpoints"
        )


class UnreadableCredentials(Mapping[str, str]):
    """The CONNECTION of a stage whose sealed credentials the server key does not open.

    Looks empty to ``in`` and ``get`` (DESC/SHOW STAGE and DROP STAGE still work); reading the
    credentials themselves, as building the stage's storage does, raises a StageError naming
    the stage, instead of falling back to anonymous access.
    """

    def __init__(self, stage: str) -> None:
        self.message = f"cannot decrypt credentials of stage {stage}: server key changed?"

    def _refuse(self) -> NoReturn:
        raise StageError(self.message)

    def __getitem__(self, key: str) -> str:
        self._refuse()

    def __iter__(self) -> Iterator[str]:
        self._refuse()

    def __len__(self) -> int:
        self._refuse()

    def __contains__(self, key: object) -> bool:
        return False

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        return default


def mask(value: str) -> str:
    if len(value) <= 4:
        return "***"
    return value[:2] + "***" + value[-2:]


def storage_params(connection: Mapping[str, str]) -> str:
    """DESC/SHOW STAGE rendering: secrets masked like Databend (``my***ey``)."""
    if isinstance(connection, UnreadableCredentials):
        return json.dumps({"error": connection.message})
    shown = {k: (mask(v) if k in SECRET_KEYS else v) for k, v in sorted(connection.items())}
    return json.dumps(shown)
