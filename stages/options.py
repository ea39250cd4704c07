"""Reading typed values out of file format options (a leaf: the readers, writers and dialects use it)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from stages.errors import StageError

_OPTION_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\", "0": "\0"}
_ESCAPE_RE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|(.))", re.S)
_LIST_ITEM = re.compile(r"\s*'((?:[^'\\]|''|\\.)*)'\s*(,|$)", re.S)


def unescape_option(value: str) -> str:
    """Databend escapes inside option strings: ``\\t \\n \\r \\\\ \\0`` and ``\\xHH`` (as typed in SQL)."""
    return _ESCAPE_RE.sub(_unescape_one, value)


def _unescape_one(match: re.Match[str]) -> str:
    if match[1] is not None:
        return chr(int(match[1], 16))
    return _OPTION_ESCAPES.get(match[2], match[0])


def bool_option(options: Mapping[str, str], name: str, default: bool) -> bool:
    value = options.get(name)
    if value is None:
        return default
    text = value.strip().upper()
    if text not in {"TRUE", "FALSE", "1", "0"}:
        raise StageError(f"{name} must be TRUE or FALSE, got '{value}'")
    return text in {"TRUE", "1"}


def choice_option(options: Mapping[str, str], name: str, default: str, allowed: set[str]) -> str:
    value = options.get(name, default).strip().upper()
    if value not in allowed:
        raise StageError(f"{name} must be one of {' | '.join(sorted(allowed))}, got '{value}'")
    return value


def int_option(options: Mapping[str, str], name: str) -> int:
    value = options.get(name, "0").strip()
    if not value.isdigit():
        raise StageError(f"{name} must be a non-negative integer, got '{value}'")
    return int(value)


def null_if_option(options: Mapping[str, str]) -> tuple[str, ...]:
    """NULL_IF = ('s1', 's2', ...) as kept from the statement text: the strings that load as NULL."""
    text = options.get("NULL_IF")
    if text is None:
        return ()
    inner = text.strip()
    if not (inner.startswith("(") and inner.endswith(")")):
        raise StageError(f"NULL_IF must be a list of strings in parentheses, e.g. ('', 'NULL'), got {text}")
    inner = inner[1:-1].strip()
    values: list[str] = []
    pos = 0
    while pos < len(inner):
        match = _LIST_ITEM.match(inner, pos)
        if match is None or (match[2] == "," and match.end() == len(inner)):
            raise StageError(
                f"NULL_IF must be a list of strings in parentheses, e.g. ('', 'NULL'), got {text}"
            )
        values.append(unescape_option(match[1].replace("''", "'")))
        pos = match.end()
    return tuple(values)
