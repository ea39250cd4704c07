"""What every per-format COPY reader is handed: one staged file and the columns to fill from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from stages.on_error import ErrorSink
from stages.storage.base import StorageBackend

CAREFUL_ROWS = 65536  # rows per chunk on a reader's careful (line-numbered) path


@dataclass(frozen=True)
class FileRead:
    """One staged file to read into ``target`` (see :func:`stages.readers.open_file_reader`).

    ``case_sensitive`` matters to the formats that match columns by name (NDJSON, Parquet);
    ``defaults`` are the column defaults by target name, for the FIELD_DEFAULT options;
    ``use_threads``: parse CSV and NDJSON on pyarrow's pool beside the caller (False: the caller alone).
    """

    backend: StorageBackend
    key: str
    options: Mapping[str, str]
    target: pa.Schema
    sink: ErrorSink
    case_sensitive: bool
    batch_rows: int
    defaults: Mapping[str, pa.Scalar]
    use_threads: bool = True
