"""Sweeping the temp files killed writes leave in local storage (issue 11 item 14)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from stages.storage.local import LocalBackend

HOUR = 3600.0


def plant_temp(storage_root: Path, rel_dir: str, name: str = "big.csv", age_seconds: float = 0.0) -> Path:
    """A temp file as a write killed mid-way leaves it: hidden name, partial data, given age."""
    directory = storage_root / rel_dir
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f".{name}.tmp-0123456789abcdef"
    temp.write_bytes(b"a,b\n1,")
    moment = time.time() - age_seconds
    os.utime(temp, (moment, moment))
    return temp


def test_stale_temp_files_go_and_the_directories_they_emptied(local_backend, storage_root):
    stale = plant_temp(storage_root, "stage/user/alice/out/2024", age_seconds=2 * HOUR)
    fresh = plant_temp(storage_root, "stage/user/alice/in", name="fresh.csv")
    with local_backend.open_output("stage/user/alice/keep.csv") as out:
        out.write(b"x")
    assert local_backend.sweep_temp_files(HOUR) == 1
    assert not stale.exists()
    assert not (storage_root / "stage/user/alice/out").exists()  # emptied by the sweep, so pruned
    assert fresh.exists()  # maybe another server's upload in progress
    assert [f.key for f in local_backend.list_files("")] == ["stage/user/alice/keep.csv"]


def test_only_temp_names_are_swept(local_backend, storage_root):
    (storage_root / "stage/user/alice").mkdir(parents=True)
    for name in ["old.csv", ".hidden.csv", ".x.tmp-123", ".x.tmp-0123456789ABCDEF"]:
        path = storage_root / "stage/user/alice" / name
        path.write_bytes(b"x")
        os.utime(path, (0, 0))
    assert local_backend.sweep_temp_files(0.0) == 0
    assert sorted(os.listdir(storage_root / "stage/user/alice")) == sorted(
        ["old.csv", ".hidden.csv", ".x.tmp-123", ".x.tmp-0123456789ABCDEF"]
    )


def test_a_write_in_progress_is_never_swept(local_backend, storage_root):
    with local_backend.open_output("stage/user/alice/slow.csv") as out:
        out.write(b"a,b\n")
        [temp] = (storage_root / "stage/user/alice").iterdir()
        os.utime(temp, (0, 0))  # an unload waiting a long time between two batches
        assert local_backend.sweep_temp_files(0.0) == 0
        out.write(b"1,2\n")
    assert local_backend.open_input_stream("stage/user/alice/slow.csv").read() == b"a,b\n1,2\n"


def test_sweep_never_follows_a_symlink(local_backend, storage_root, outside_dir):
    plant_temp(outside_dir, "", age_seconds=2 * HOUR)
    (storage_root / "stage").mkdir()
    (storage_root / "stage" / "link").symlink_to(outside_dir)
    assert local_backend.sweep_temp_files(HOUR) == 0
    assert (outside_dir / ".big.csv.tmp-0123456789abcdef").exists()


def test_sweep_of_an_empty_root(tmp_path):
    assert LocalBackend(tmp_path / "empty").sweep_temp_files(0.0) == 0
