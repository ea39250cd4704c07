"""CSV and TSV batch writers for COPY INTO <location>, as Databend writes those formats."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from stages.conversion import BINARY_FORMATS, encode_binary, is_binary
from stages.csv_dialect import record_delimiter
from stages.errors import StageError
from stages.options import bool_option, choice_option, unescape_option

_QUOTE_STYLES = {"QUOTE_NOT_NULL", "QUOTE_MINIMAL"}  # CSV unload: Databend's QUOTE_STYLE
# TSV escapes, backslash first so the backslashes added by later rules are not doubled.
_TSV_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


class CsvBatchWriter:
    """CSV as Databend writes it: QUOTE_STYLE = QUOTE_NOT_NULL (default) quotes every non-NULL field,
    QUOTE_MINIMAL only the fields that need it; binary columns as BINARY_FORMAT text."""

    def __init__(self, stream: pa.NativeFile, schema: pa.Schema, options: Mapping[str, str]) -> None:
        if unescape_option(options.get("QUOTE", '"')) != '"':
            raise StageError("QUOTE other than '\"' is not supported for CSV unload")
        self._stream = stream
        self._binary_format = choice_option(options, "BINARY_FORMAT", "HEX", BINARY_FORMATS)
        self._binary = [i for i, f in enumerate(schema) if is_binary(f.type)]
        for i in self._binary:  # written as text
            schema = schema.set(i, schema.field(i).with_type(pa.string()))
        self._schema = schema
        self._delimiter = _one_char(options, "FIELD_DELIMITER", ",")
        self._eol = _eol(options)
        self._null = unescape_option(options.get("NULL_DISPLAY", "\\N"))
        header = bool_option(options, "OUTPUT_HEADER", False)
        style = choice_option(options, "QUOTE_STYLE", "QUOTE_NOT_NULL", _QUOTE_STYLES)
        # Arrow's writer has no "minimal" style ("needed" quotes every string): that one is ours.
        self._writer: pacsv.CSVWriter | None = None
        if style == "QUOTE_MINIMAL":
            # Quoted: the delimiter, quotes and line breaks; also '' and the NULL text, which would
            # otherwise read back as NULL.
            self._special = "[" + re.escape(self._delimiter + '"\r\n' + self._eol) + "]"
            if header:
                names = self._quote_where_needed(pa.array(schema.names, pa.string())).to_pylist()
                stream.write((self._delimiter.join(names) + self._eol).encode())
        else:
            write_options = pacsv.WriteOptions(
                include_header=header,
                delimiter=self._delimiter,
                eol=self._eol,
                null_string=self._null,
                quoting_style="all_valid",
            )
            self._writer = pacsv.CSVWriter(stream, schema, write_options=write_options)

    def write(self, batch: pa.RecordBatch) -> None:
        if self._binary:
            columns = list(batch.columns)
            for i in self._binary:
                columns[i] = encode_binary(columns[i], self._binary_format)
            batch = pa.RecordBatch.from_arrays(columns, schema=self._schema)
        if self._writer is not None:
            self._writer.write_batch(batch)
            return
        fields = []
        for column in batch.columns:
            text = column if pa.types.is_string(column.type) else column.cast(pa.string())
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                text = self._quote_where_needed(text)
            fields.append(pc.fill_null(text, self._null))
        self._stream.write(text_values(self._line(fields)))

    def _quote_where_needed(self, text: pa.Array) -> pa.Array:
        needed = pc.or_(
            pc.match_substring_regex(text, self._special),
            pc.is_in(text, value_set=pa.array(["", self._null], pa.string())),
        )
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        return pc.if_else(needed, quoted, text)

    def _line(self, fields: list[pa.Array]) -> pa.Array:
        # No nulls remain, so the data buffer holds the lines back to back.
        lines = pc.binary_join_element_wise(*fields, self._delimiter)
        return pc.binary_join_element_wise(lines, "", self._eol)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class TsvBatchWriter:
    """Tab separated, no quoting, backslash escapes, ``\\N`` for NULL; built column-wise; binary
    columns as BINARY_FORMAT text, as in CSV."""

    def __init__(self, stream: pa.NativeFile, schema: pa.Schema, options: Mapping[str, str]) -> None:
        self._stream, self._schema = stream, schema
        self._binary_format = choice_option(options, "BINARY_FORMAT", "HEX", BINARY_FORMATS)
        self._binary = {i for i, f in enumerate(schema) if is_binary(f.type)}
        self._delimiter = _one_char(options, "FIELD_DELIMITER", "\t")
        self._eol = _eol(options)
        if bool_option(options, "OUTPUT_HEADER", False):
            header = self._delimiter.join(_tsv_escape_text(name) for name in schema.names)
            stream.write((header + self._eol).encode())

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [
            _tsv_column(
                encode_binary(column, self._binary_format) if i in self._binary else column, self._eol
            )
            for i, column in enumerate(batch.columns)
        ]
        lines = pc.binary_join_element_wise(*columns, self._delimiter)
        # No nulls remain, so the data buffer holds the lines back to back.
        lines = pc.binary_join_element_wise(lines, "", self._eol)
        self._stream.write(text_values(lines))

    def close(self) -> None:
        pass


def text_values(strings: pa.Array) -> pa.Buffer:
    """The concatenated bytes of a null-free string array (zero copy)."""
    buffers = strings.buffers()
    offsets = pa.Array.from_buffers(pa.int32(), len(strings) + 1, [None, buffers[1]], offset=strings.offset)
    return buffers[2][offsets[0].as_py() : offsets[-1].as_py()]


def _tsv_column(column: pa.Array, eol: str) -> pa.Array:
    text = column.cast(pa.string()) if not pa.types.is_string(column.type) else column
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        for plain, escaped in _TSV_ESCAPES:
            text = pc.replace_substring(text, plain, escaped)
        if eol not in ("\n", "\r\n", "\\", "\t"):  # another record delimiter: '\\' + itself
            text = pc.replace_substring(text, eol, "\\" + eol)
    return pc.fill_null(text, "\\N")


def _tsv_escape_text(text: str) -> str:
    for plain, escaped in _TSV_ESCAPES:
        text = text.replace(plain, escaped)
    return text


def _one_char(options: Mapping[str, str], name: str, default: str) -> str:
    value = unescape_option(options[name]) if name in options else default
    if len(value) != 1:
        raise StageError(f"{name} must be one character for unload")
    return value


def _eol(options: Mapping[str, str]) -> str:
    return record_delimiter(options)  # '\\n', '\\r\\n' or one other ASCII character
