"""COPY INTO <location>: the unload query's columns recast so each format's writer takes them and
writes them as DuckDB's own ``COPY ... TO`` would.

The writers work on Arrow, and some DuckDB types reach Arrow in a form they cannot write or would
write wrongly: pyarrow's CSV writer takes no nested type, its cast to text none of LIST, STRUCT,
MAP, UNION or INTERVAL; BIT and BIGNUM come out as their internal bytes; TIME WITH TIME ZONE as a
TIME that has lost its offset. So DuckDB does the conversion in the unload query itself:

* CSV, TSV: those types as DuckDB's text (``CAST(col AS VARCHAR)``: ``[1, 2]``, ``{'a': 1}``,
  ``{k=1}``, ``1 day``, ``0101``, ``12:34:56+02``).
* NDJSON: each row as DuckDB's JSON of it (``to_json``, as DuckDB's JSON writer), in one column
  :data:`NDJSON_LINE` the NDJSON writer writes as is; top-level BLOBs stay hex text as before.
* Parquet: BIT and BIGNUM as text (as DuckDB writes them); TIME WITH TIME ZONE as the UTC TIME
  (DuckDB writes a UTC-adjusted TIME); UHUGEINT as text (DuckDB writes a DOUBLE, which loses
  digits, and Arrow's decimal128 wraps above 2**127 - 1). HUGEINT stays DECIMAL(38, 0), which
  holds every HUGEINT exactly (DuckDB writes a DOUBLE). INTERVAL and UNION stay: pyarrow cannot
  write them, so the file is written by DuckDB (:mod:`stages.parquet_via_duckdb`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stages.unload_formats import NDJSON_LINE

# DuckDB type ids (``DuckDBPyType.id``); BIGNUM was VARINT before DuckDB 2.0.
# UHUGEINT reaches Arrow as decimal128(38, 0), which wraps above 2**127 - 1 (-1 for the largest).
_AS_TEXT_IN_DELIMITED = frozenset(
    {"list", "struct", "map", "array", "union", "interval", "bit", "bignum", "varint", "time with time zone"}
    | {"uhugeint"}
)
_AS_TEXT_IN_PARQUET = frozenset({"bit", "bignum", "varint", "uhugeint"})


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _unique_keys(names: Sequence[str]) -> list[str]:
    """Names made unique as DuckDB's JSON writer does: a repeat (any case) gets ``_<n>``."""
    seen: dict[str, int] = {}
    keys = []
    for name in names:
        n = seen.get(name.lower(), 0)
        seen[name.lower()] = n + 1
        keys.append(f"{name}_{n}" if n else name)
    return keys


def unload_select(kind: str, columns: Sequence[tuple[str, str]]) -> str | None:
    """The select list that recasts ``columns`` ((name, DuckDB type id) of the unload query) for the
    writer of format ``kind``, or None when the query's own columns do.

    Columns are referenced by position (``#1``): a query may repeat a name.
    """
    if kind == "NDJSON":
        keys = _unique_keys([name for name, _ in columns])
        fields = ", ".join(
            f"{_ident(key)} := " + (f"lower(hex(#{i}))" if type_id == "blob" else f"#{i}")
            for i, (key, (_, type_id)) in enumerate(zip(keys, columns, strict=True), start=1)
        )
        return f"CAST(to_json(struct_pack({fields})) AS VARCHAR) AS {_ident(NDJSON_LINE)}"
    recast: Mapping[str, str]
    if kind == "PARQUET":
        recast = dict.fromkeys(_AS_TEXT_IN_PARQUET, "CAST({c} AS VARCHAR)")
        recast = {**recast, "time with time zone": "CAST(timezone('UTC', {c}) AS TIME)"}
    else:
        recast = dict.fromkeys(_AS_TEXT_IN_DELIMITED, "CAST({c} AS VARCHAR)")
    if not any(type_id in recast for _, type_id in columns):
        return None
    return ", ".join(
        recast.get(type_id, "{c}").format(c=f"#{i}") + " AS " + _ident(name)
        for i, (name, type_id) in enumerate(columns, start=1)
    )
