"""COPY INTO <location> output files: each written atomically, a new one once MAX_FILE_SIZE is passed,
and several Parquet files at once on threads."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa

from stages.storage.base import StorageBackend
from stages.unload_formats import BatchWriter, UnloadFormat, open_batch_writer
from stages.unload_naming import stage_key


@dataclass(frozen=True)
class UnloadedFile:
    """One written file; ``name`` is relative to the stage root (what LIST shows)."""

    name: str
    size: int
    rows: int


class _CountingSink:
    """File-like wrapper that counts bytes; ``close`` leaves the storage stream to its context."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.size, self.closed = raw, 0, False

    def write(self, data: bytes | memoryview | pa.Buffer) -> int:
        view = memoryview(data)
        self.raw.write(view)
        self.size += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self.raw.flush()

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class OpenFile:
    """One output file: storage stream -> byte counter -> optional compression -> format writer."""

    def __init__(
        self, backend: StorageBackend, key: str, name: str, fmt: UnloadFormat, schema: pa.Schema
    ) -> None:
        self.name, self.rows = name, 0
        self._context: AbstractContextManager[BinaryIO] = backend.open_output(key)
        self._counter = _CountingSink(self._context.__enter__())
        try:
            self._file = pa.PythonFile(self._counter, mode="w")
            self._stream = pa.CompressedOutputStream(self._file, fmt.codec) if fmt.codec else self._file
            self._writer: BatchWriter = open_batch_writer(fmt, self._stream, schema)
        except BaseException as exc:
            self._context.__exit__(type(exc), exc, exc.__traceback__)
            raise

    @property
    def size(self) -> int:
        """Bytes written, or held by a writer that writes its file only when closed."""
        return max(self._counter.size, getattr(self._writer, "buffered", 0))

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write(batch)
        self.rows += batch.num_rows

    def finish(self) -> UnloadedFile:
        try:
            self._writer.close()
            self._stream.close()
        except BaseException as exc:
            self._context.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._context.__exit__(None, None, None)
        return UnloadedFile(self.name, self._counter.size, self.rows)

    def abort(self, exc: BaseException) -> None:
        """Discard the partial file (the backend drops its temporary file)."""
        try:
            # Closed now, the encoder cannot write to the discarded stream later (pyarrow's
            # ParquetWriter closes itself when collected); a writer that can drop its rows does.
            getattr(self._writer, "discard", self._writer.close)()
            self._stream.close()
        except BaseException:  # noqa: S110 - the file is being discarded anyway
            pass
        try:
            self._context.__exit__(type(exc), exc, exc.__traceback__)
        except BaseException:  # noqa: S110 - the original error matters more
            pass


def numbered_names(next_name: Callable[[int], str]) -> Callable[[], tuple[int, str]]:
    """Number and name of each next file, 0, 1, 2, ... in the order asked (thread-safe)."""
    numbers = itertools.count()
    lock = threading.Lock()

    def open_name() -> tuple[int, str]:
        with lock:
            index = next(numbers)
            return index, next_name(index)

    return open_name


def write_files(
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    backend: StorageBackend,
    stage_prefix: str,
    fmt: UnloadFormat,
    open_name: Callable[[], tuple[int, str]],
    *,
    max_file_size: int,
    single: bool,
) -> list[tuple[int, UnloadedFile]]:
    """Write ``batches`` into files opened one after another; (number, file) for each file written.

    ``open_name`` gives the next file's number and name. A file is closed at a batch boundary once it
    exceeds ``max_file_size`` (never with ``single``); on any error the unfinished file is discarded.
    """
    files: list[tuple[int, UnloadedFile]] = []
    current: tuple[int, OpenFile] | None = None
    try:
        pieces = _Pieces(max_file_size, whole=single or fmt.kind == "PARQUET")

        def written() -> int:  # the size of the file the next piece goes to
            return current[1].size if current is not None else 0

        for batch in batches:
            for piece in pieces.split(batch, written):
                if current is None:
                    index, name = open_name()
                    current = (index, OpenFile(backend, stage_key(stage_prefix, name), name, fmt, schema))
                before = current[1].size
                current[1].write(piece)
                pieces.wrote(piece.num_rows, current[1].size - before)
                if not single and current[1].size > max_file_size:
                    files.append((current[0], current[1].finish()))
                    current = None
        if current is not None:
            files.append((current[0], current[1].finish()))
            current = None
    except BaseException as exc:
        if current is not None:
            current[1].abort(exc)
        raise
    return files


class _Pieces:
    """Text formats: a batch cut into pieces that end a file near MAX_FILE_SIZE.

    Parquet encodes a whole row group at once, so its files roll at batch boundaries. A text
    writer writes each batch's bytes at once; a batch of many rows is cut so that a file passes
    MAX_FILE_SIZE by about one row: a small probe first, then pieces the bytes per row of the last
    piece say fill half the room left (rows may grow longer; a file takes a few dozen pieces).
    """

    _PROBE_ROWS = 16

    def __init__(self, max_file_size: int, *, whole: bool) -> None:
        self.max_file_size, self.whole = max_file_size, whole
        self.rows, self.last_rows, self.bytes = 0, 0, 0

    def wrote(self, rows: int, size: int) -> None:
        self.rows += rows
        if size:  # compression may hold the bytes back: keep the last rate measured
            self.last_rows, self.bytes = rows, size

    def split(self, batch: pa.RecordBatch, written: Callable[[], int]) -> Iterator[pa.RecordBatch]:
        """``written``: the size of the file the next piece goes to (0: a new file)."""
        if batch.num_rows == 0:
            return
        if self.whole:
            yield batch
            return
        offset = 0
        while offset < batch.num_rows:
            room = max(0, self.max_file_size - written())
            if self.bytes == 0:  # nothing measured yet; compression may hold the bytes back
                step = max(self._PROBE_ROWS, 2 * self.rows)
            else:
                step = max(1, room * self.last_rows // (2 * self.bytes) + 1)
            piece = batch.slice(offset, min(step, batch.num_rows - offset))
            offset += piece.num_rows
            yield piece


class _Stopped(Exception):
    """Internal: another writer or the producer failed; this writer discards its unfinished file."""


def write_parallel(
    reader: pa.RecordBatchReader,
    backend: StorageBackend,
    stage_prefix: str,
    fmt: UnloadFormat,
    next_name: Callable[[int], str],
    *,
    max_file_size: int,
    writers: int,
) -> list[UnloadedFile]:
    """Several Parquet files at once, each on its own thread, fed batches in arrival order.

    pyarrow encodes and compresses one file on one core; DuckDB's own COPY TO uses them all. Each
    file holds its rows in order, but consecutive batches may land in different files (as in
    Databend's and Snowflake's parallel unload). Files are numbered in the order they are opened.
    """
    feed: queue.Queue[pa.RecordBatch | None] = queue.Queue(maxsize=2 * writers)
    lock = threading.Lock()
    open_name = numbered_names(next_name)  # shared by the writers
    done: list[tuple[int, UnloadedFile]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        ended = False  # the producer's end marker was taken

        def fed() -> Iterator[pa.RecordBatch]:
            nonlocal ended
            while (batch := feed.get()) is not None:
                if stop.is_set():
                    raise _Stopped
                yield batch
            ended = True
            if stop.is_set():
                raise _Stopped  # the producer failed: the last file is not finished either

        try:
            written = write_files(
                fed(),
                reader.schema,
                backend,
                stage_prefix,
                fmt,
                open_name,
                max_file_size=max_file_size,
                single=False,
            )
            with lock:
                done.extend(written)
        except BaseException as exc:
            if not isinstance(exc, _Stopped):
                stop.set()
                with lock:
                    failures.append(exc)
            while not ended and feed.get() is not None:  # drain, so the producer never blocks
                pass

    threads = [threading.Thread(target=write, name=f"unload-{i}", daemon=True) for i in range(writers)]
    for thread in threads:
        thread.start()
    try:
        for batch in reader:
            if stop.is_set():
                break
            if batch.num_rows:
                feed.put(batch)
    except BaseException as exc:
        stop.set()
        failures.append(exc)
    finally:
        for _ in threads:
            feed.put(None)
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    return [f for _, f in sorted(done, key=lambda pair: pair[0])]
