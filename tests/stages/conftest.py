"""Fixtures for the stage layer: a real local backend in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.storage.local import LocalBackend


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    root = tmp_path / "storage"
    root.mkdir()
    return root


@pytest.fixture
def outside_dir(tmp_path: Path) -> Path:
    """A directory next to the storage root, holding a secret no stage may reach."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("top,secret\n")
    return outside


@pytest.fixture
def local_backend(storage_root: Path) -> LocalBackend:
    return LocalBackend(storage_root)
