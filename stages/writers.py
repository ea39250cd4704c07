"""COPY INTO <location>: stream an Arrow result into stage files with Databend naming.

Names follow stage-semantics.md §1.5: ``<folder>/data_<query_id>_<group:0000>_<batch:00000000>.<ext>``
(``.csv``, ``.txt`` for TSV/TEXT, ``.ndjson``, ``.parquet``, plus ``.gz``/``.zst``/... for
compressed text formats). Every file is written through ``StorageBackend.open_output`` (atomic,
streamed); a file is closed at a batch boundary once it exceeds ``max_file_size``.

An empty result writes no file (Databend does the same), so the returned list is empty.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from stages.errors import StageError
from stages.storage.base import StorageBackend
from stages.unload_files import UnloadedFile, numbered_names, write_files, write_parallel
from stages.unload_formats import unload_format
from stages.unload_naming import check_modes, file_namer, stage_key

__all__ = ["UnloadedFile", "unload", "unload_extension"]

DEFAULT_MAX_FILE_SIZE = 64 << 20


def unload_extension(options: Mapping[str, str]) -> str:
    """The file suffix for these format options, e.g. ``.csv.gz`` or ``.parquet``."""
    return unload_format(options).extension


def unload(
    reader: pa.RecordBatchReader,
    backend: StorageBackend,
    stage_prefix: str,
    location_path: str,
    options: Mapping[str, str],
    *,
    query_id: str,
    single: bool,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    overwrite: bool = False,
    use_raw_path: bool = False,
    include_query_id: bool = True,
    writers: int = 1,
) -> list[UnloadedFile]:
    """Write ``reader`` under ``stage_prefix`` + ``location_path``; return the files written.

    Args:
        stage_prefix: the storage key prefix of the stage root (``''`` or ending in ``'/'``).
        location_path: the path after ``@stage`` (``''``, ``'a'``, ``'a/'``, ``'a/data_'``, or a file
            name with ``use_raw_path``).
        options: normalised file format options; ``TYPE`` defaults to PARQUET.
        max_file_size: bytes; a new file starts at the next batch once a file exceeds it.
        writers: Parquet files written at once (see :func:`stages.unload_files.write_parallel`);
            text formats and ``single`` always use one. Pass 1 when the rows' order across files
            matters (ORDER BY).

    Raises:
        StageError: invalid mode combination or option, or ``file already exists: <name>``.
    """
    fmt = unload_format(options)
    check_modes(
        location_path,
        single=single,
        overwrite=overwrite,
        use_raw_path=use_raw_path,
        include_query_id=include_query_id,
    )
    if use_raw_path:
        names = None
        raw_name = location_path.lstrip("/")
    else:
        names = file_namer(location_path, fmt.extension, query_id=query_id, include_query_id=include_query_id)
        raw_name = ""

    def next_name(index: int) -> str:
        name = raw_name if names is None else names.name(index)
        if not overwrite and backend.exists(stage_key(stage_prefix, name)):
            raise StageError(f"file already exists: {name}")
        return name

    if writers > 1 and not single and fmt.kind == "PARQUET":
        return write_parallel(
            reader, backend, stage_prefix, fmt, next_name, max_file_size=max_file_size, writers=writers
        )
    written = write_files(
        reader,
        reader.schema,
        backend,
        stage_prefix,
        fmt,
        numbered_names(next_name),
        max_file_size=max_file_size,
        single=single,
    )
    return [f for _, f in written]
