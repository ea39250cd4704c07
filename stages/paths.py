"""Stage references, path rules and listing semantics (Databend behaviour).

Every path a user supplies after ``@stage/`` goes through :func:`clean_rel_path` before it is
joined to a storage prefix. The rules make a key mean the same thing on a local filesystem and on
an object store: S3 does not interpret ``.``/``..``/``//`` while local disks and some S3 clients do,
so such segments are refused instead of normalised (see docs/security.md §5).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import re2

from stages.errors import BadStagePath

STAGE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# User names become a storage path segment (stage/user/<name>/), hence the tight alphabet.
USER_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_KEY_BYTES = 1024

USER_STAGE = "~"
TABLE_STAGE_MARK = "%"
# '%orders' or '%sales.orders': each part is a plain identifier, as it becomes a path segment.
_TABLE_REF_RE = re.compile(r"^%([A-Za-z_][A-Za-z0-9_]{0,127})(?:\.([A-Za-z_][A-Za-z0-9_]{0,127}))?$")

# Characters AWS says to avoid plus the Windows-reserved ones; '%' because we never URL-decode
# (a decoded '%2e%2e' would be a traversal), '~' because it reads as a home directory.
FORBIDDEN_CHARS = frozenset('\\:*?"<>|%#{}[]^`~')
_MAX_SHOWN = 120


@dataclass(frozen=True)
class StageLocation:
    """A parsed ``@stage[/path]`` reference.

    Attributes:
        stage_name: ``'~'`` for the user stage, a stage name, or ``'%table'`` / ``'%schema.table'``.
        path: the cleaned path after the stage name, relative to the stage root; ``''`` is the root.
            It is a prefix, not a folder: a trailing ``'/'`` is kept.
    """

    stage_name: str
    path: str

    @property
    def is_user_stage(self) -> bool:
        return self.stage_name == USER_STAGE

    @property
    def is_table_stage(self) -> bool:
        return self.stage_name.startswith(TABLE_STAGE_MARK)

    def table_parts(self) -> tuple[str | None, str]:
        """``(schema or None, table)`` of a table stage reference.

        Raises:
            BadStagePath: the location is not a table stage.
        """
        match = _TABLE_REF_RE.match(self.stage_name)
        if match is None:
            raise BadStagePath(f"Not a table stage: @{self.stage_name}")
        first, second = match.group(1), match.group(2)
        return (first, second) if second is not None else (None, first)


def _show(text: str) -> str:
    """Quote a user string for an error message: escape control characters, cap the length."""
    shown = text if text.isprintable() else text.encode("unicode_escape", "backslashreplace").decode("ascii")
    if len(shown) > _MAX_SHOWN:
        shown = shown[:_MAX_SHOWN] + "..."
    return f"'{shown}'"


def _bad_path(path: str, reason: str) -> BadStagePath:
    return BadStagePath(f"Invalid stage path {_show(path)}: {reason}")


def _check_stage_name(name: str, ref: str) -> str:
    if name == USER_STAGE or STAGE_NAME_RE.match(name) or _TABLE_REF_RE.match(name):
        return name
    raise BadStagePath(f"Invalid stage reference {_show(ref)}: bad stage name {_show(name)}")


def parse_stage_ref(text: str) -> StageLocation:
    """Parse ``@~``, ``@~/a/b.csv``, ``@s1/dir/``, ``@%orders/x.csv`` or ``@#orders``.

    The caller removes the single quotes of the quoted form (``'@s/a b/'``). The text is split at
    the first ``'/'``; leading slashes of the rest are dropped (``@~//x`` is ``@~/x``), as Databend
    does, so the rest can never be an absolute path.

    Raises:
        BadStagePath: no leading ``@``, a bad stage name, or an unsafe path.
    """
    if not text.startswith("@"):
        raise BadStagePath(f"Invalid stage reference {_show(text)}: must start with '@'")
    name, _, rest = text[1:].partition("/")
    if name.startswith("#"):
        # RFC 20221028 spells table stages '@#table'; Snowflake (and we) use '@%table'.
        name = TABLE_STAGE_MARK + name[1:]
    return StageLocation(_check_stage_name(name, text), clean_rel_path(rest))


def _check_text(path: str) -> None:
    """Rules on the whole string: encoding, normal form, length, character set."""
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise _bad_path(path, "not valid UTF-8 (lone surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise _bad_path(path, f"longer than {MAX_KEY_BYTES} bytes")
    if not unicodedata.is_normalized("NFC", path):
        raise _bad_path(path, "text must be NFC-normalised")
    for ch in path:
        if ch in FORBIDDEN_CHARS:
            raise _bad_path(path, f"character {ch!r} is not allowed")
        if unicodedata.category(ch) == "Cc":
            raise _bad_path(path, f"control character {ch!r} is not allowed")


def _segment_problem(seg: str) -> str | None:
    """Why one complete path segment is unsafe, or None."""
    if seg == "":
        return "empty segments ('//') are not allowed"
    if seg in (".", ".."):
        return f"'{seg}' segments are not allowed"
    folded = unicodedata.normalize("NFKC", seg)
    # One-dot leaders, fullwidth dots or slashes fold to '.', '..' or '/' in some tools.
    if folded in (".", "..") or "/" in folded or "\\" in folded:
        return f"segment {_show(seg)} looks like '{folded}' after Unicode folding"
    if seg != seg.strip():
        return f"segment {_show(seg)} has leading or trailing spaces"
    if seg.endswith("."):
        # Windows and some SMB/NFS servers drop trailing dots, so 'a.' would alias 'a'.
        return f"segment {_show(seg)} ends with a dot"
    return None


def clean_rel_path(rel: str) -> str:
    """Validate a path relative to a stage root and return it without leading slashes.

    ``''`` (the root) stays ``''``; a trailing ``'/'`` is kept because stage paths are prefixes.
    Nothing is ever URL-decoded or normalised: an unsafe path is refused, not repaired.

    Raises:
        BadStagePath: the message names the problem and the path.
    """
    _check_text(rel)
    body = rel.lstrip("/")
    if body == "":
        return ""
    segments = body.split("/")
    if segments[-1] == "":
        segments = segments[:-1]  # trailing '/' marks a folder-style prefix
    for seg in segments:
        problem = _segment_problem(seg)
        if problem is not None:
            raise _bad_path(rel, problem)
    return body


def validate_key(key: str) -> str:
    """Check a full storage key (a file, not a prefix) handed to a backend.

    Unlike :func:`clean_rel_path` nothing is stripped: a leading ``'/'`` (absolute) is an error.

    Raises:
        BadStagePath: absolute, empty, ending in ``'/'``, or unsafe.
    """
    if key == "" or key.startswith("/") or key.endswith("/"):
        raise _bad_path(key, "a file key must be relative and must not end with '/'")
    clean_rel_path(key)
    return key


def validate_prefix(prefix: str) -> str:
    """Check a listing prefix: complete segments follow the key rules, the last one may be partial.

    ``'a/b.'`` is a valid prefix (of ``'a/b.csv'``) though ``'b.'`` is not a valid segment.

    Raises:
        BadStagePath: absolute or unsafe.
    """
    if prefix.startswith("/"):
        raise _bad_path(prefix, "a prefix must be relative")
    _check_text(prefix)
    head, _, partial = prefix.rpartition("/")
    if head:
        clean_rel_path(head + "/")
    if partial in (".", ".."):
        raise _bad_path(prefix, f"'{partial}' segments are not allowed")
    return prefix


def join_key(prefix: str, rel: str) -> str:
    """Join a server-built storage prefix (``''`` or ending in ``'/'``) and a user path.

    Raises:
        BadStagePath: the prefix is malformed, the path is unsafe, or the key is too long.
    """
    if prefix and not prefix.endswith("/"):
        raise _bad_path(prefix, "a storage prefix must end with '/'")
    if prefix:
        validate_prefix(prefix)
    key = prefix + clean_rel_path(rel)
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise _bad_path(key, f"longer than {MAX_KEY_BYTES} bytes")
    return key


def relative_name(prefix: str, key: str) -> str:
    """The part of ``key`` after ``prefix`` (e.g. the LIST ``name`` relative to the stage root).

    Raises:
        BadStagePath: ``key`` does not start with ``prefix``.
    """
    if not key.startswith(prefix):
        raise BadStagePath(f"Key {_show(key)} is outside prefix {_show(prefix)}")
    return key[len(prefix) :]


# PATTERN is user text matched against every listed key, so it runs on RE2: matching is linear in
# the key length whatever the pattern (Python's backtracking `re` is exponential on '(a+)+b'). The
# length cap and memory budget bound compile work: 2 MiB fits '\pL{50}' or '[^/]{1000}' with room.
MAX_PATTERN_CHARS = 1024
_PATTERN_MAX_MEM = 2 << 20

# Start of an RE2 error message -> what to tell the user. Databend runs Rust's regex crate, which
# refuses the same constructs, so these are not compatibility gaps but things to rewrite.
_RE2_REASONS = (
    ("invalid perl operator: (?=", "lookahead (?=...) is not supported"),
    ("invalid perl operator: (?!", "negative lookahead (?!...) is not supported"),
    ("invalid perl operator: (?<=", "lookbehind (?<=...) is not supported"),
    ("invalid perl operator: (?<!", "negative lookbehind (?<!...) is not supported"),
    ("invalid perl operator: (?>", "atomic groups (?>...) are not supported"),
    ("invalid perl operator: (?#", "comments (?#...) are not supported"),
    ("invalid perl operator: (?x", "verbose mode (?x) is not supported"),
    ("invalid escape sequence: \\Z", "\\Z is not supported: use $ or \\z for the end of the name"),
    ("pattern too large", "too large to compile: use fewer or smaller repetitions"),
)
_GLOB_HINT = "PATTERN is a regular expression, not a glob: '.*[.]csv', not '*.csv'"
_RE2_SYNTAX = "PATTERN uses linear-time RE2 syntax"


class PathPattern:
    """A compiled PATTERN: does a whole name (the remainder after the location path) match?"""

    __slots__ = ("_regex", "text")

    def __init__(self, text: str, regex: Any) -> None:
        self.text = text
        self._regex = regex

    def __repr__(self) -> str:
        return f"PathPattern({self.text!r})"

    def matches(self, name: str) -> bool:
        """Anchored at both ends, as Databend's ``^(?:pattern)$``; ``$`` is the end of the text."""
        try:
            return self._regex.fullmatch(name) is not None
        except UnicodeEncodeError:
            return False  # a key no UTF-8 text can spell (lone surrogate) matches nothing


def _re2_reason(message: str) -> str:
    """A user-facing reason for an RE2 compile error."""
    for start, reason in _RE2_REASONS:
        if message.startswith(start):
            return f"{reason} ({_RE2_SYNTAX})"
    escape = message.removeprefix("invalid escape sequence: \\")
    if escape != message and escape[:1] in "123456789":
        return f"backreferences such as \\{escape[:1]} are not supported ({_RE2_SYNTAX})"
    operator = message.removeprefix("bad repetition operator: ")
    if operator != message and len(operator) == 2 and operator[1] == "+":
        return f"possessive quantifiers such as {operator} are not supported ({_RE2_SYNTAX})"
    shown = message if len(message) <= _MAX_SHOWN else message[:_MAX_SHOWN] + "..."
    if message.startswith("no argument for repetition operator"):
        return f"{shown} ({_GLOB_HINT})"
    return shown


def _pattern_options() -> re2.Options:
    options = re2.Options()
    options.max_mem = _PATTERN_MAX_MEM
    options.log_errors = False  # RE2 would print every bad user pattern to stderr
    options.never_capture = True  # only match / no match is needed: groups cost work
    return options


def compile_pattern(pattern: str) -> PathPattern:
    """Compile a PATTERN option (LIST, REMOVE, COPY, ``PATTERN =>``): the one place that does.

    The pattern is compiled on its own and matched with RE2's both-ends anchoring, so nothing
    in it (``a)|(b``) can escape the anchors the way text pasted into ``^(?:...)$`` could.

    Raises:
        BadStagePath: ``Invalid PATTERN '<pattern>': <reason>``.
    """
    if len(pattern) > MAX_PATTERN_CHARS:
        raise BadStagePath(f"Invalid PATTERN {_show(pattern)}: longer than {MAX_PATTERN_CHARS} characters")
    try:
        regex = re2.compile(pattern, _pattern_options())
    except UnicodeEncodeError:
        raise BadStagePath(f"Invalid PATTERN {_show(pattern)}: not valid UTF-8 (lone surrogate)") from None
    except re2.error as exc:
        message = exc.args[0] if exc.args else ""
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
        raise BadStagePath(f"Invalid PATTERN {_show(pattern)}: {_re2_reason(text)}") from None
    return PathPattern(pattern, regex)


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


K = TypeVar("K", bound=_Keyed)


def filter_listing(
    files: Iterable[K], stage_prefix: str, location_path: str, pattern: PathPattern | None = None
) -> Iterator[tuple[str, K]]:
    """Apply LIST/COPY/REMOVE selection to a backend listing.

    Args:
        files: backend entries (anything with a ``key``), e.g. ``list_files(stage_prefix + path)``.
        stage_prefix: storage prefix of the stage root, e.g. ``'stage/user/alice/'``.
        location_path: :attr:`StageLocation.path` (a prefix relative to the stage root).
        pattern: from :func:`compile_pattern`; matched against the remainder after the location
            path, so for ``@s/p`` the remainder of ``p/x/y.csv`` is ``/x/y.csv``.

    Yields:
        ``(name, file)`` with ``name`` relative to the stage root (the LIST ``name`` column).
    """
    location_key = stage_prefix + location_path
    for entry in files:
        if not entry.key.startswith(location_key):
            continue
        if pattern is not None and not pattern.matches(entry.key[len(location_key) :]):
            continue
        yield entry.key[len(stage_prefix) :], entry
