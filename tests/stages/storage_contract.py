"""Behaviour every storage backend must show (the contract in stages/storage/base.py).

A backend opts in with ``class TestXBackend(StorageContract)`` and a ``backend`` fixture that
returns an empty backend. The class has no ``Test`` prefix so pytest does not collect it alone.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from stages.errors import BadStagePath, StorageError
from stages.storage.base import PresignedRequest, StagedFile, StorageBackend

MIB = 1024 * 1024


def put(backend: StorageBackend, key: str, data: bytes = b"x") -> None:
    """Store ``data`` under ``key`` through the backend's own atomic writer."""
    with backend.open_output(key) as out:
        out.write(data)


def read_all(backend: StorageBackend, key: str) -> bytes:
    with backend.open_input_stream(key) as stream:
        data: bytes = stream.read()
    return data


def keys(backend: StorageBackend, prefix: str) -> list[str]:
    return [entry.key for entry in backend.list_files(prefix)]


class _Boom(Exception):
    pass


SEEDED = ["a", "a.csv", "a/x.csv", "a/sub/y.csv", "ab.csv", "a-b.csv", "a0.csv", "b.csv", "ba/a.csv"]
UNSAFE_KEYS = ["/abs.csv", "a/../b.csv", "../x.csv", "a//b.csv", "./a.csv", "a/", "", "a\\b.csv", "a%2e.csv"]


class StorageContract:
    """Shared behaviour tests; subclasses provide the ``backend`` fixture."""

    @pytest.fixture
    def seeded(self, backend: StorageBackend) -> StorageBackend:
        # 'a' (a file) and 'a/x.csv' cannot both exist on a local disk, so 'a' lives in 'top/'.
        for key in SEEDED:
            put(backend, f"top/{key}" if key == "a" else f"s/{key}", key.encode())
        return backend

    # -- writing and reading --------------------------------------------------------------------

    def test_round_trip(self, backend: StorageBackend) -> None:
        put(backend, "stage/user/alice/data.csv", b"id,name\n1,x\n")
        assert read_all(backend, "stage/user/alice/data.csv") == b"id,name\n1,x\n"

    def test_open_input_is_random_access(self, backend: StorageBackend) -> None:
        put(backend, "f.bin", bytes(range(256)) * 4)
        with backend.open_input("f.bin") as handle:
            assert handle.seekable()
            assert handle.size() == 1024
            assert handle.read_at(4, 510) == bytes([254, 255, 0, 1])
            handle.seek(1020)
            assert handle.read() == bytes([252, 253, 254, 255])

    def test_overwrite_replaces_content(self, backend: StorageBackend) -> None:
        put(backend, "f.csv", b"old content")
        put(backend, "f.csv", b"new")
        assert read_all(backend, "f.csv") == b"new"
        assert backend.stat("f.csv").size == 3

    def test_unicode_and_spaces_in_keys(self, backend: StorageBackend) -> None:
        key = "stage/internal/s1/données 2024/été (final).csv"
        put(backend, key, b"1")
        assert read_all(backend, key) == b"1"
        assert keys(backend, "stage/internal/s1/") == [key]

    def test_empty_file(self, backend: StorageBackend) -> None:
        put(backend, "empty.csv", b"")
        assert backend.stat("empty.csv").size == 0
        assert read_all(backend, "empty.csv") == b""

    def test_pyarrow_writer_into_output_stream(self, backend: StorageBackend) -> None:
        table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
        with backend.open_output("out/t.csv") as out:
            pacsv.write_csv(table, out)
        assert pacsv.read_csv(backend.open_input_stream("out/t.csv")).equals(table)

    def test_parquet_through_open_input(self, backend: StorageBackend) -> None:
        table = pa.table({"x": list(range(1000))})
        with backend.open_output("p/t.parquet") as out:
            pq.write_table(table, out)
        assert pq.read_table(backend.open_input("p/t.parquet")).equals(table)

    def test_filesystem_and_path_readable_by_pyarrow(self, backend: StorageBackend) -> None:
        table = pa.table({"x": [1, 2], "y": ["u", "v"]})
        with backend.open_output("p/t.parquet") as out:
            pq.write_table(table, out)
        filesystem, path = backend.filesystem_and_path("p/t.parquet")
        assert pq.read_table(path, filesystem=filesystem).equals(table)
        assert ds.dataset([path], filesystem=filesystem, format="parquet").to_table().equals(table)

    # -- atomic, streamed writes ----------------------------------------------------------------

    def test_failed_write_leaves_nothing(self, backend: StorageBackend) -> None:
        with pytest.raises(_Boom), backend.open_output("stage/internal/s/new/f.csv") as out:
            out.write(b"partial")
            raise _Boom
        assert keys(backend, "") == []
        assert not backend.exists("stage/internal/s/new/f.csv")

    def test_failed_overwrite_keeps_old_content(self, backend: StorageBackend) -> None:
        put(backend, "f.csv", b"old")
        with pytest.raises(_Boom), backend.open_output("f.csv") as out:
            out.write(b"new and broken")
            raise _Boom
        assert read_all(backend, "f.csv") == b"old"
        assert keys(backend, "") == ["f.csv"]

    def test_file_invisible_until_write_completes(self, backend: StorageBackend) -> None:
        with backend.open_output("d/f.csv") as out:
            out.write(b"x" * 100_000)
            out.flush()
            # in-progress temporary files are never listed, and the key does not exist yet
            assert keys(backend, "") == []
            assert not backend.exists("d/f.csv")
        assert keys(backend, "") == ["d/f.csv"]

    def test_concurrent_reader_sees_old_or_new(self, backend: StorageBackend) -> None:
        put(backend, "f.csv", b"old")
        seen: list[bytes] = []
        with backend.open_output("f.csv") as out:
            out.write(b"new")
            thread = threading.Thread(target=lambda: seen.append(read_all(backend, "f.csv")))
            thread.start()
            thread.join()
        assert seen == [b"old"]
        assert read_all(backend, "f.csv") == b"new"

    def test_large_streamed_write(self, backend: StorageBackend) -> None:
        chunk_count, digest = 50, hashlib.sha256()
        tracemalloc.start()
        try:
            with backend.open_output("big/blob.bin") as out:
                for i in range(chunk_count):
                    chunk = bytes([i]) * MIB
                    digest.update(chunk)
                    out.write(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # 50 MiB went through, but the writer never held anything close to all of it
        assert peak < 20 * MIB
        assert backend.stat("big/blob.bin").size == chunk_count * MIB
        check = hashlib.sha256()
        with backend.open_input_stream("big/blob.bin") as stream:
            while block := stream.read(4 * MIB):
                check.update(block)
        assert check.hexdigest() == digest.hexdigest()

    # -- stat -----------------------------------------------------------------------------------

    def test_stat_reports_size_etag_and_utc_time(self, backend: StorageBackend) -> None:
        before = datetime.now(UTC) - timedelta(minutes=5)
        put(backend, "f.csv", b"12345")
        info = backend.stat("f.csv")
        assert isinstance(info, StagedFile)
        assert (info.key, info.size) == ("f.csv", 5)
        assert info.etag and '"' not in info.etag
        assert info.last_modified.utcoffset() == timedelta(0)
        assert before < info.last_modified < datetime.now(UTC) + timedelta(minutes=5)

    def test_stat_missing_raises_storage_error(self, backend: StorageBackend) -> None:
        with pytest.raises(StorageError, match="File does not exist: nope/x.csv"):
            backend.stat("nope/x.csv")

    def test_open_missing_raises_storage_error(self, backend: StorageBackend) -> None:
        with pytest.raises(StorageError, match="File does not exist"):
            backend.open_input("missing.csv")
        with pytest.raises(StorageError, match="File does not exist"):
            backend.open_input_stream("missing.csv")
        with pytest.raises(StorageError, match="File does not exist"):
            backend.filesystem_and_path("missing.csv")

    def test_directory_is_not_a_file(self, backend: StorageBackend) -> None:
        put(backend, "d/f.csv")
        with pytest.raises(StorageError, match="^File does not exist: d$"):
            backend.stat("d")
        assert not backend.exists("d")

    def test_etag_changes_when_content_changes(self, backend: StorageBackend) -> None:
        put(backend, "f.csv", b"aaaa")
        first = backend.stat("f.csv").etag
        assert backend.stat("f.csv").etag == first  # stable while unchanged
        put(backend, "f.csv", b"bbbb")  # same size, probably the same mtime tick
        assert backend.stat("f.csv").etag != first

    def test_listing_and_stat_agree(self, seeded: StorageBackend) -> None:
        for entry in seeded.list_files(""):
            assert seeded.stat(entry.key) == entry

    # -- listing --------------------------------------------------------------------------------

    def test_list_uses_prefix_not_folder_semantics(self, seeded: StorageBackend) -> None:
        assert keys(seeded, "s/a") == [
            "s/a-b.csv",
            "s/a.csv",
            "s/a/sub/y.csv",
            "s/a/x.csv",
            "s/a0.csv",
            "s/ab.csv",
        ]

    def test_list_folder_prefix(self, seeded: StorageBackend) -> None:
        assert keys(seeded, "s/a/") == ["s/a/sub/y.csv", "s/a/x.csv"]

    def test_list_file_name_prefix_matches_longer_names(self, seeded: StorageBackend) -> None:
        put(seeded, "s/a.csv.bk")
        assert keys(seeded, "s/a.csv") == ["s/a.csv", "s/a.csv.bk"]

    def test_list_is_recursive_and_sorted_by_key(self, seeded: StorageBackend) -> None:
        listed = keys(seeded, "")
        assert listed == sorted(listed)
        assert set(listed) == {f"top/{k}" if k == "a" else f"s/{k}" for k in SEEDED}

    def test_list_sizes(self, seeded: StorageBackend) -> None:
        sizes = {entry.key: entry.size for entry in seeded.list_files("s/")}
        assert sizes["s/a/sub/y.csv"] == len(b"a/sub/y.csv")
        assert sizes["s/ab.csv"] == len(b"ab.csv")

    def test_list_missing_prefix_is_empty(self, seeded: StorageBackend) -> None:
        assert keys(seeded, "nothing/here/") == []
        assert keys(seeded, "s/zz") == []
        assert keys(seeded, "s/a.csv/") == []  # a file is not a folder

    def test_list_separates_similar_user_stages(self, backend: StorageBackend) -> None:
        put(backend, "stage/user/alice/x.csv")
        put(backend, "stage/user/alice2/y.csv")
        assert keys(backend, "stage/user/alice/") == ["stage/user/alice/x.csv"]

    # -- deleting -------------------------------------------------------------------------------

    def test_delete_counts_and_ignores_missing(self, seeded: StorageBackend) -> None:
        assert seeded.delete(["s/a.csv", "s/missing.csv", "no/such/dir/x.csv"]) == 1
        assert not seeded.exists("s/a.csv")
        assert seeded.exists("s/ab.csv")
        assert seeded.delete([]) == 0

    def test_delete_accepts_any_iterable(self, seeded: StorageBackend) -> None:
        assert seeded.delete(k for k in ["s/b.csv", "s/ba/a.csv"]) == 2
        assert keys(seeded, "s/b") == []

    def test_delete_prefix_uses_prefix_semantics(self, seeded: StorageBackend) -> None:
        assert seeded.delete_prefix("s/a/") == 2
        assert keys(seeded, "s/a/") == []
        assert seeded.delete_prefix("s/a") == 4  # a-b.csv, a.csv, a0.csv, ab.csv
        assert keys(seeded, "s/") == ["s/b.csv", "s/ba/a.csv"]

    def test_delete_prefix_missing_is_zero(self, backend: StorageBackend) -> None:
        assert backend.delete_prefix("nothing/") == 0

    def test_deleted_folder_no_longer_listed(self, seeded: StorageBackend) -> None:
        seeded.delete(["s/a/x.csv", "s/a/sub/y.csv"])
        put(seeded, "s/a/new.csv")  # the folder can be used again afterwards
        assert keys(seeded, "s/a/") == ["s/a/new.csv"]

    # -- safety and presign ---------------------------------------------------------------------

    @pytest.mark.parametrize("key", UNSAFE_KEYS)
    def test_unsafe_keys_refused_everywhere(self, backend: StorageBackend, key: str) -> None:
        refused = re.escape(f"Invalid stage path '{key}': ")  # by the key check, before any I/O
        for operation in (backend.stat, backend.open_input, backend.open_input_stream, backend.open_output):
            with pytest.raises(BadStagePath, match=refused):
                operation(key)
        with pytest.raises(BadStagePath, match=refused):
            backend.delete([key])

    def test_bad_key_in_batch_refused_before_any_delete(self, seeded: StorageBackend) -> None:
        with pytest.raises(BadStagePath, match=re.escape("Invalid stage path 's/../top/a': '..' segments")):
            seeded.delete(["s/a.csv", "s/../top/a"])
        assert seeded.exists("s/a.csv")

    @pytest.mark.parametrize("prefix", ["/abs", "a/../", "../", "a//b", "x%2f"])
    def test_unsafe_prefix_refused(self, backend: StorageBackend, prefix: str) -> None:
        with pytest.raises(BadStagePath, match="^Invalid stage path '"):
            backend.list_files(prefix)
        with pytest.raises(BadStagePath, match="^Invalid stage path '"):
            backend.delete_prefix(prefix)

    def test_presign_returns_request_or_none(self, backend: StorageBackend) -> None:
        result = backend.presign("stage/user/alice/f.csv", "GET", 3600, None)
        assert result is None or isinstance(result, PresignedRequest)
        with pytest.raises(BadStagePath, match=re.escape("Invalid stage path '../x': '..' segments")):
            backend.presign("../x", "GET", 3600, None)

    def test_bytes_written_by_io_copy(self, backend: StorageBackend) -> None:
        source = io.BytesIO(b"0123456789" * 10_000)
        with backend.open_output("copied.bin") as out:
            while block := source.read(4096):
                out.write(block)
        assert backend.stat("copied.bin").size == 100_000
