"""Parquet files for COPY: columns matched by name, a row group at a time, cast to the target types."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from stages.conversion import Chunk, apply_null_if, convert_columns, emit_chunk, null_if_array
from stages.file_read import FileRead
from stages.formats import MISSING_FIELD_CHOICES
from stages.options import choice_option, null_if_option
from stages.parquet_io import parquet_batches


class ParquetFile:
    """Parquet matched by name, cast to the target types; line = 1-based row number."""

    def __init__(self, file: FileRead) -> None:
        self.file, self.target = file, file.target
        options = file.options
        self.missing = choice_option(options, "MISSING_FIELD_AS", "ERROR", MISSING_FIELD_CHOICES)
        self.null_if = null_if_array(null_if_option(options))  # string values that load as NULL
        # A column missing from the file: its default with FIELD_DEFAULT, else NULL.
        self.missing_values = [
            file.defaults.get(f.name) if self.missing == "FIELD_DEFAULT" else None for f in self.target
        ]

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            parquet = pq.ParquetFile(self.file.backend.open_input(self.file.key))
            names = parquet.schema_arrow.names
        except (pa.ArrowInvalid, OSError) as exc:
            self.file.sink.file_error(f"Invalid Parquet file: {exc}")
            return
        columns = self._match(names)
        wanted = sorted({c for c in columns if c is not None})
        offset = 0
        for raw in parquet_batches(parquet, self.file.batch_rows, wanted):
            batch = self._convert(raw, columns, offset)
            offset += raw.num_rows
            if batch is not None:
                yield batch

    def _match(self, file_names: list[str]) -> list[str | None]:
        """The file column for each target column (None = missing, read as null)."""
        exact = set(file_names)
        folded: dict[str, list[str]] = {}
        for name in file_names:
            folded.setdefault(name.lower(), []).append(name)
        found: list[str | None] = []
        for fld in self.target:
            if fld.name in exact:
                found.append(fld.name)
            elif not self.file.case_sensitive and len(folded.get(fld.name.lower(), [])) == 1:
                found.append(folded[fld.name.lower()][0])
            elif not self.file.case_sensitive and fld.name.lower() in folded:
                self.file.sink.file_error(
                    f"Ambiguous column '{fld.name}' in file: {folded[fld.name.lower()]}"
                )
            elif self.missing == "ERROR":
                self.file.sink.file_error(f"Missing column '{fld.name}' in file (MISSING_FIELD_AS = ERROR)")
            else:
                found.append(None)
        return found

    def _convert(self, raw: pa.RecordBatch, columns: list[str | None], offset: int) -> pa.RecordBatch | None:
        source = [
            apply_null_if(raw.column(c), self.null_if)
            if c is not None
            else _constant(missing, f.type, raw.num_rows)
            for c, f, missing in zip(columns, self.target, self.missing_values, strict=True)
        ]
        arrays, bad = convert_columns(source, self.target)
        return emit_chunk(Chunk(arrays, bad, lambda row: offset + row + 1), self.target, self.file.sink)


def _constant(value: pa.Scalar | None, typ: pa.DataType, length: int) -> pa.Array:
    return pa.nulls(length, typ) if value is None else pa.repeat(value.cast(typ), length)
