"""Temp files of uploads killed mid-way are swept when the server starts (issue 11 item 14).

A kill -9 during a PRESIGN UPLOAD or a COPY unload leaves ``.<name>.tmp-<hex>`` next to where the
file would have landed: hidden from LIST, and before this fix never removed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.conftest import connect
from tests.e2e.stage_helpers import query

HOUR = 3600.0


def plant(directory: Path, name: str, age_seconds: float, data: bytes = b"a,b\n1,") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    moment = time.time() - age_seconds
    os.utime(path, (moment, moment))
    return path


def test_start_up_removes_every_temp_file_in_the_data_dir(start_server, tmp_path):
    # start_server puts its first server's data dir at tmp_path/'srv0'; the storage is inside it.
    stage_dir = tmp_path / "srv0" / "storage" / "stage" / "user" / "root"
    killed = plant(stage_dir / "unload" / "2024", ".data_0_0.csv.tmp-00112233445566ff", age_seconds=2 * HOUR)
    # Written a moment ago, but the data dir is locked to one server: no upload can be running.
    recent = plant(stage_dir, ".upload.csv.tmp-0123456789abcdef", age_seconds=0)
    kept = plant(stage_dir, "kept.csv", age_seconds=2 * HOUR, data=b"a\n1\n")
    running = start_server()
    assert not killed.exists() and not recent.exists()
    assert not (stage_dir / "unload").exists()  # the directories only the temp file needed go too
    with connect(running) as root:
        assert [r["name"] for r in query(root, "LIST @~")] == ["kept.csv"]
    assert kept.read_bytes() == b"a\n1\n"


def test_shared_storage_root_keeps_recent_temp_files(start_server, tmp_path):
    shared = tmp_path / "shared-storage"
    stage_dir = shared / "stage" / "user" / "root"
    killed = plant(stage_dir, ".big.parquet.tmp-00112233445566ff", age_seconds=2 * HOUR)
    # Another server using the same storage root may be streaming this one right now.
    in_progress = plant(stage_dir, ".other.csv.tmp-0123456789abcdef", age_seconds=60)
    running = start_server(storage_root=str(shared))
    assert not killed.exists()
    assert in_progress.exists()
    with connect(running) as root:
        assert query(root, "LIST @~") == []  # a temp file is never listed
