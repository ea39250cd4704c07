"""Result schemas as clients see them: every field with Flight SQL column metadata.

The schema is computed once per result (engine.metadata.annotated, from the Arrow types) and
sent in the FlightInfo, in DoGet's stream and in CreatePreparedStatement's ``dataset_schema``;
the batches are re-labelled with it zero-copy, so the stream's schema equals the FlightInfo's.
"""

from __future__ import annotations

import pyarrow as pa

from engine import Result, metadata


def described(schema: pa.Schema) -> pa.Schema:
    return schema if metadata.is_annotated(schema) else metadata.annotated(schema)


def shaped(result: Result) -> Result:
    """``result`` carrying the described schema (on its table and every streamed batch)."""
    if result.is_update:
        return result
    return metadata.conformed(result, described(result.schema))
