"""Storage backends for stage files, chosen by URL scheme."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping

from stages.errors import StageError
from stages.storage.base import PresignedRequest, StagedFile, StorageBackend

__all__ = ["BACKENDS", "PresignedRequest", "StagedFile", "StorageBackend", "load_backend"]

# Dotted class paths, imported only when used: the S3 backend's dependencies stay optional.
BACKENDS: dict[str, str] = {
    "file": "stages.storage.local.LocalBackend",
    "fs": "stages.storage.local.LocalBackend",  # Databend spells local stages 'fs:///path/'
    "s3": "stages.storage.s3.S3Backend",
}

# Two or more letters, so a Windows drive letter ('C:/x') is not taken for a scheme.
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def _scheme(url: str) -> str:
    match = _SCHEME_RE.match(url)
    return match.group(1).lower() if match else "file"


def load_backend(url: str, options: Mapping[str, str] | None = None) -> StorageBackend:
    """Build the backend for ``url``; a plain path means local storage.

    Raises:
        StageError: unknown scheme, backend not importable, or bad URL/options for the backend.
    """
    scheme = _scheme(url)
    target = BACKENDS.get(scheme)
    if target is None:
        supported = ", ".join(sorted(BACKENDS))
        # Only the scheme is echoed: the rest of a URL may carry credentials.
        raise StageError(f"Unsupported storage scheme '{scheme}' (supported: {supported})")
    module_name, _, class_name = target.rpartition(".")
    try:
        backend_cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise StageError(f"Storage scheme '{scheme}' is not available: {exc}") from exc
    backend: StorageBackend = backend_cls.from_url(url, options or {})
    return backend
