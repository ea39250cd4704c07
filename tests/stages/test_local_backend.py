"""LocalBackend: the storage contract plus local-only safety checks (symlinks, traversal, FIFOs)."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stages.errors import BadStagePath, StageError, StorageError
from stages.storage import BACKENDS, load_backend
from stages.storage.local import LocalBackend
from tests.stages.storage_contract import StorageContract, keys, put, read_all

ALICE = "stage/user/alice"
BOB = "stage/user/bob"


class TestLocalBackend(StorageContract):
    @pytest.fixture
    def backend(self, local_backend: LocalBackend) -> LocalBackend:
        return local_backend


@pytest.fixture
def planted(local_backend: LocalBackend, storage_root: Path, outside_dir: Path) -> LocalBackend:
    """alice/link.csv -> a file outside the root; alice/bobdir -> bob's stage (both planted by hand)."""
    put(local_backend, f"{ALICE}/data.csv", b"alice")
    put(local_backend, f"{BOB}/secret.csv", b"bob secret")
    alice = storage_root / ALICE
    (alice / "link.csv").symlink_to(outside_dir / "secret.csv")
    (alice / "bobdir").symlink_to(storage_root / BOB, target_is_directory=True)
    (alice / "outdir").symlink_to(outside_dir, target_is_directory=True)
    return local_backend


SYMLINKED_KEYS = [f"{ALICE}/link.csv", f"{ALICE}/bobdir/secret.csv", f"{ALICE}/outdir/secret.csv"]


@pytest.mark.parametrize("key", SYMLINKED_KEYS)
def test_symlinks_refused_for_reading(planted: LocalBackend, key: str) -> None:
    for operation in (
        planted.stat,
        planted.open_input,
        planted.open_input_stream,
        planted.filesystem_and_path,
    ):
        with pytest.raises(BadStagePath, match="symbolic link"):
            operation(key)
    assert not _exists_or_refused(planted, key)


def _exists_or_refused(backend: LocalBackend, key: str) -> bool:
    try:
        return backend.exists(key)
    except BadStagePath:
        return False


@pytest.mark.parametrize("key", SYMLINKED_KEYS)
def test_symlinks_refused_for_delete(
    planted: LocalBackend, key: str, outside_dir: Path, storage_root: Path
) -> None:
    with pytest.raises(BadStagePath, match="symbolic link"):
        planted.delete([key])
    assert (outside_dir / "secret.csv").exists()
    assert (storage_root / BOB / "secret.csv").read_bytes() == b"bob secret"
    assert os.path.islink(storage_root / ALICE / key.split("/")[3])


def test_write_through_symlinked_dir_refused(
    planted: LocalBackend, storage_root: Path, outside_dir: Path
) -> None:
    with (
        pytest.raises(BadStagePath, match="symbolic link"),
        planted.open_output(f"{ALICE}/bobdir/planted.csv"),
    ):
        pass
    with pytest.raises(BadStagePath, match="symbolic link"), planted.open_output(f"{ALICE}/outdir/x.csv"):
        pass
    assert sorted(os.listdir(storage_root / BOB)) == ["secret.csv"]
    assert sorted(os.listdir(outside_dir)) == ["secret.csv"]


def test_write_onto_symlink_refused(planted: LocalBackend, outside_dir: Path) -> None:
    with pytest.raises(BadStagePath, match="symbolic link"), planted.open_output(f"{ALICE}/link.csv") as out:
        out.write(b"overwrite")
    assert (outside_dir / "secret.csv").read_text() == "top,secret\n"


def test_symlinks_never_listed(planted: LocalBackend) -> None:
    assert keys(planted, f"{ALICE}/") == [f"{ALICE}/data.csv"]
    assert keys(planted, "") == [f"{ALICE}/data.csv", f"{BOB}/secret.csv"]


def test_list_through_symlinked_prefix_refused(planted: LocalBackend) -> None:
    with pytest.raises(BadStagePath, match="symbolic link"):
        keys(planted, f"{ALICE}/bobdir/")


def test_delete_prefix_skips_symlinks(planted: LocalBackend, storage_root: Path) -> None:
    assert planted.delete_prefix(f"{ALICE}/") == 1
    assert (storage_root / BOB / "secret.csv").exists()
    assert os.path.islink(storage_root / ALICE / "link.csv")


def test_symlinked_stage_root_component_refused(
    local_backend: LocalBackend, storage_root: Path, outside_dir: Path
) -> None:
    (storage_root / "stage").mkdir()
    (storage_root / "stage" / "user").symlink_to(outside_dir, target_is_directory=True)
    with pytest.raises(BadStagePath, match="refusing to follow a symbolic link in storage"):
        local_backend.stat("stage/user/secret.csv")
    assert keys(local_backend, "stage/") == []


def test_root_itself_may_be_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    backend = LocalBackend(tmp_path / "alias")
    assert backend.root == str(real.resolve())  # realpath'ed once, at construction
    put(backend, "x/y.csv", b"1")
    assert (real / "x" / "y.csv").read_bytes() == b"1"


@pytest.mark.parametrize(
    "key",
    [
        f"{ALICE}/../bob/secret.csv",
        f"{ALICE}/a/../../bob/secret.csv",
        "/etc/passwd",
        "../outside/secret.csv",
        f"{ALICE}/..%2fbob/secret.csv",
        f"{ALICE}/..\\bob\\secret.csv",
        f"{ALICE}/\uff0e\uff0e/bob/x.csv",
    ],
)
def test_traversal_refused_before_any_io(local_backend: LocalBackend, storage_root: Path, key: str) -> None:
    # With the root gone every real I/O would fail with StorageError; BadStagePath shows the key
    # was refused first.
    shutil.rmtree(storage_root)
    for operation in (
        local_backend.stat,
        local_backend.open_input,
        local_backend.open_output,
        local_backend.filesystem_and_path,
    ):
        with pytest.raises(BadStagePath, match=re.escape(f"Invalid stage path '{key}': ")):
            operation(key)
    with pytest.raises(BadStagePath, match=re.escape(f"Invalid stage path '{key}': ")):
        local_backend.delete([key])


def test_missing_root_is_storage_error(local_backend: LocalBackend, storage_root: Path) -> None:
    shutil.rmtree(storage_root)
    with pytest.raises(StorageError, match="root"):
        local_backend.stat("x.csv")


def test_temp_file_names_are_reserved(local_backend: LocalBackend) -> None:
    with pytest.raises(BadStagePath, match="reserved"):
        local_backend.open_output("d/.f.csv.tmp-0123456789abcdef")


def test_stray_temp_files_are_not_listed(local_backend: LocalBackend, storage_root: Path) -> None:
    put(local_backend, "d/f.csv")
    (storage_root / "d" / ".f.csv.tmp-0123456789abcdef").write_bytes(b"half")
    assert keys(local_backend, "") == ["d/f.csv"]


def test_temp_file_sits_next_to_target_while_writing(local_backend: LocalBackend, storage_root: Path) -> None:
    with local_backend.open_output("d/e/f.csv") as out:
        out.write(b"x" * 1000)
        out.flush()
        names = os.listdir(storage_root / "d" / "e")
        assert len(names) == 1 and re.fullmatch(r"\.f\.csv\.tmp-[0-9a-f]{16}", names[0])
        assert os.path.getsize(storage_root / "d" / "e" / names[0]) == 1000  # streamed, not buffered
    assert os.listdir(storage_root / "d" / "e") == ["f.csv"]


def test_long_name_gets_a_short_temp_name(local_backend: LocalBackend) -> None:
    name = "n" * 250
    put(local_backend, f"d/{name}", b"1")
    assert keys(local_backend, "d/") == [f"d/{name}"]


def test_failed_write_removes_created_directories(local_backend: LocalBackend, storage_root: Path) -> None:
    with pytest.raises(RuntimeError, match="^fail$"), local_backend.open_output("new/deep/dir/f.csv"):
        raise RuntimeError("fail")
    assert os.listdir(storage_root) == []


def test_write_where_directory_exists_fails_early(local_backend: LocalBackend) -> None:
    put(local_backend, "d/f.csv")
    with pytest.raises(StorageError, match="Cannot write d"), local_backend.open_output("d"):
        pytest.fail("the with body must not run")


def test_write_below_a_file_fails(local_backend: LocalBackend) -> None:
    put(local_backend, "f.csv")
    with pytest.raises(StorageError, match="Cannot write"), local_backend.open_output("f.csv/x"):
        pytest.fail("the with body must not run")


def test_delete_prunes_empty_parents_but_not_root(local_backend: LocalBackend, storage_root: Path) -> None:
    put(local_backend, f"{ALICE}/a/b/c.csv")
    put(local_backend, f"{ALICE}/keep.csv")
    assert local_backend.delete([f"{ALICE}/a/b/c.csv"]) == 1
    assert sorted(os.listdir(storage_root / ALICE)) == ["keep.csv"]
    assert local_backend.delete([f"{ALICE}/keep.csv"]) == 1
    assert storage_root.is_dir() and os.listdir(storage_root) == []


def test_delete_ignores_directories(local_backend: LocalBackend) -> None:
    put(local_backend, "d/f.csv")
    assert local_backend.delete(["d"]) == 0
    assert local_backend.exists("d/f.csv")


def test_fifo_is_not_a_file(local_backend: LocalBackend, storage_root: Path) -> None:
    os.mkfifo(storage_root / "pipe.csv")
    started = time.monotonic()
    with pytest.raises(StorageError, match="File does not exist"):
        local_backend.open_input("pipe.csv")  # must not block waiting for a writer
    assert time.monotonic() - started < 5
    assert keys(local_backend, "") == []
    assert local_backend.delete(["pipe.csv"]) == 0


def test_unaddressable_names_on_disk_not_listed(local_backend: LocalBackend, storage_root: Path) -> None:
    for name in ["bad:name.csv", "trailing.", " lead.csv", "we%ird.csv"]:
        (storage_root / name).write_bytes(b"1")
    put(local_backend, "ok.csv")
    assert keys(local_backend, "") == ["ok.csv"]


def test_etag_is_hex_fingerprint(local_backend: LocalBackend, storage_root: Path) -> None:
    put(local_backend, "f.csv", b"abc")
    info = os.stat(storage_root / "f.csv")
    assert local_backend.stat("f.csv").etag == f"{info.st_size:x}-{info.st_mtime_ns:x}-{info.st_ino:x}"


def test_last_modified_follows_mtime(local_backend: LocalBackend, storage_root: Path) -> None:
    put(local_backend, "f.csv")
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    ns = int(when.timestamp()) * 10**9 + 123456 * 1000
    os.utime(storage_root / "f.csv", ns=(ns, ns))
    assert local_backend.stat("f.csv").last_modified == when


def test_presign_is_not_native(local_backend: LocalBackend) -> None:
    assert local_backend.presign("f.csv", "GET", 3600, None) is None


def test_filesystem_path_is_under_root(local_backend: LocalBackend) -> None:
    put(local_backend, "a/b.csv")
    _, path = local_backend.filesystem_and_path("a/b.csv")
    assert path == os.path.join(local_backend.root, "a", "b.csv")


def test_writes_survive_concurrent_pruning(local_backend: LocalBackend) -> None:
    # A delete prunes empty directories while writers create them: writers must retry, not fail.
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        try:
            for i in range(150):
                put(local_backend, f"w/a/b/c/{n}-{i}.csv", b"1")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def deleter() -> None:
        while not stop.is_set():
            local_backend.delete_prefix("w/")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    cleaner = threading.Thread(target=deleter)
    cleaner.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    cleaner.join()
    assert errors == []


# -- load_backend --------------------------------------------------------------------------------


def test_load_backend_plain_path(tmp_path: Path) -> None:
    backend = load_backend(str(tmp_path / "data"), {})
    assert isinstance(backend, LocalBackend)
    assert backend.root == str((tmp_path / "data").resolve())


@pytest.mark.parametrize("scheme", ["file", "fs", "FILE"])
def test_load_backend_file_urls(tmp_path: Path, scheme: str) -> None:
    backend = load_backend(f"{scheme}://{tmp_path}/data/", {})
    assert isinstance(backend, LocalBackend)
    put(backend, "x.csv", b"1")
    assert read_all(backend, "x.csv") == b"1"
    assert (tmp_path / "data" / "x.csv").exists()


def test_load_backend_unknown_scheme() -> None:
    with pytest.raises(StageError, match="Unsupported storage scheme 'gopher'"):
        load_backend("gopher://user:pw@host/x", {})


def test_load_backend_error_hides_url_credentials() -> None:
    with pytest.raises(
        StageError, match=re.escape("Unsupported storage scheme 'ftp' (supported: file, fs, s3)")
    ) as caught:
        load_backend("ftp://user:hunter2@host/x", {})
    assert "hunter2" not in str(caught.value)


def test_load_backend_local_rejects_options_and_hosts(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="no options"):
        load_backend(str(tmp_path), {"endpoint": "x"})
    with pytest.raises(StageError, match="file:///"):
        load_backend("file://otherhost/data", {})


def test_scheme_table_names_dotted_classes() -> None:
    assert BACKENDS["file"] == "stages.storage.local.LocalBackend"
    assert BACKENDS["s3"] == "stages.storage.s3.S3Backend"
