"""Stage references, path rules (security.md §5.3) and listing semantics (stage-semantics.md §2)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from stages.errors import BadStagePath
from stages.model import user_stage
from stages.paths import (
    MAX_KEY_BYTES,
    USER_NAME_RE,
    StageLocation,
    clean_rel_path,
    compile_pattern,
    filter_listing,
    join_key,
    parse_stage_ref,
    relative_name,
    validate_key,
    validate_prefix,
)
from stages.storage.base import StagedFile
from stages.storage.local import LocalBackend
from tests.stages.storage_contract import put

# -- parse_stage_ref: accepted -------------------------------------------------------------------

ACCEPTED = [
    ("@~", "~", ""),
    ("@~/", "~", ""),
    ("@~/data.csv", "~", "data.csv"),
    ("@~/dir/", "~", "dir/"),
    ("@~/a/b.csv", "~", "a/b.csv"),
    ("@~//data.csv", "~", "data.csv"),  # leading '/' is not absolute
    ("@~///a/b/", "~", "a/b/"),
    ("@~//", "~", ""),
    ("@s1", "s1", ""),
    ("@s1/x.csv", "s1", "x.csv"),
    ("@s1/dir/", "s1", "dir/"),
    ("@s1/dir", "s1", "dir"),  # a prefix, not a folder
    ("@_under_score/a", "_under_score", "a"),
    ("@S1/x", "S1", "x"),
    ("@%orders", "%orders", ""),
    ("@%orders/x.csv", "%orders", "x.csv"),
    ("@%sales.orders/2024/", "%sales.orders", "2024/"),
    ("@#orders", "%orders", ""),  # RFC spelling
    ("@#orders/a.csv", "%orders", "a.csv"),
    ("@s/a b/c d.csv", "s", "a b/c d.csv"),  # inner spaces are fine (quoted form)
    ("@s/a'b.csv", "s", "a'b.csv"),
    ("@s/données/été.csv", "s", "données/été.csv"),
    ("@s/.hidden", "s", ".hidden"),
    ("@s/a.b.c", "s", "a.b.c"),
    ("@s/x=1/y=2/part-0.parquet", "s", "x=1/y=2/part-0.parquet"),
    ("@s/a+b,c;d@e$f&g!h(i)", "s", "a+b,c;d@e$f&g!h(i)"),
    ("@s/" + "a" * 1000, "s", "a" * 1000),
]


@pytest.mark.parametrize(("text", "stage", "path"), ACCEPTED)
def test_parse_accepts(text: str, stage: str, path: str) -> None:
    assert parse_stage_ref(text) == StageLocation(stage, path)


# -- parse_stage_ref: refused --------------------------------------------------------------------

REFUSED = [
    ("~/x", "must start with '@'"),
    ("s1/x", "must start with '@'"),
    ("", "must start with '@'"),
    ("@", "bad stage name"),
    ("@/x", "bad stage name"),
    ("@../x", "bad stage name"),
    ("@..", "bad stage name"),
    ("@1s/x", "bad stage name"),
    ("@s-1/x", "bad stage name"),
    ("@~alice/x", "bad stage name"),
    ("@%", "bad stage name"),
    ("@%a.b.c", "bad stage name"),
    ("@%../x", "bad stage name"),
    ("@#", "bad stage name"),
    ("@" + "s" * 129, "bad stage name"),
    ("@~/../bob/secret.csv", "'..' segments are not allowed"),
    ("@~/a/../../bob/secret.csv", "'..' segments are not allowed"),
    ("@s1/../../user/bob/secret.csv", "'..' segments are not allowed"),
    ("@~/..", "'..' segments are not allowed"),
    ("@~/a/..", "'..' segments are not allowed"),
    ("@~/./data.csv", "'.' segments are not allowed"),
    ("@~/a/./b", "'.' segments are not allowed"),
    ("@~/a//b.csv", "empty segments"),
    ("@~/a/b//", "empty segments"),
    ("@~/..%2fbob/secret.csv", "'%' is not allowed"),
    ("@~/%2e%2e/bob/secret.csv", "'%' is not allowed"),
    ("@~/..\\bob\\secret.csv", "'\\\\' is not allowed"),
    ("@~/data.csv\x00.parquet", "control character"),
    ("@~/dir\n/x", "control character"),
    ("@~/tab\there", "control character"),
    ("@~/del\x7f", "control character"),
    ("@~/c1\x85", "control character"),
    ("@~/C:/x", "':' is not allowed"),
    ("@~/*.csv", "'*' is not allowed"),
    ("@~/file?.csv", "'?' is not allowed"),
    ("@~/~/x", "'~' is not allowed"),
    ('@~/a"b', "'\"' is not allowed"),
    ("@~/a<b", "'<' is not allowed"),
    ("@~/a>b", "'>' is not allowed"),
    ("@~/a|b", "'|' is not allowed"),
    ("@~/a#b", "'#' is not allowed"),
    ("@~/{a,b}.csv", "'{' is not allowed"),
    ("@~/[0-9].csv", "'[' is not allowed"),
    ("@~/a^b", "'^' is not allowed"),
    ("@~/a`b", "'`' is not allowed"),
    ("@~/data.csv ", "leading or trailing spaces"),
    ("@~/ data.csv", "leading or trailing spaces"),
    ("@~/dir /x.csv", "leading or trailing spaces"),
    ("@~/a\u3000/x", "leading or trailing spaces"),
    ("@~/...", "ends with a dot"),
    ("@~/....", "ends with a dot"),
    ("@~/file.", "ends with a dot"),
    ("@~/dir./x", "ends with a dot"),
    ("@~/\u2024\u2024/x", "after Unicode folding"),  # one-dot leaders
    ("@~/\uff0e\uff0e/x", "after Unicode folding"),  # fullwidth full stops
    ("@~/\u2025/x", "after Unicode folding"),  # two-dot leader
    ("@~/a\uff0fb", "after Unicode folding"),  # fullwidth solidus
    ("@~/e\u0301.csv", "NFC"),  # decomposed é
    ("@~/\ud800.csv", "lone surrogate"),
    ("@~/" + "a" * 1100, "longer than 1024 bytes"),
    ("@~/" + "é" * 600, "longer than 1024 bytes"),  # 1200 bytes in UTF-8
]


@pytest.mark.parametrize(("text", "reason"), REFUSED)
def test_parse_refuses(text: str, reason: str) -> None:
    with pytest.raises(BadStagePath) as caught:
        parse_stage_ref(text)
    assert reason in str(caught.value)


def test_table_counts() -> None:
    assert len(ACCEPTED) + len(REFUSED) >= 80


def test_error_message_names_problem_and_path() -> None:
    with pytest.raises(BadStagePath) as caught:
        clean_rel_path("a/../b")
    assert str(caught.value) == "Invalid stage path 'a/../b': '..' segments are not allowed"


def test_error_message_escapes_control_chars_and_is_short() -> None:
    with pytest.raises(
        BadStagePath,
        match=re.escape("Invalid stage path 'x\\x00y': control character '\\x00' is not allowed"),
    ) as caught:
        clean_rel_path("x\x00y")
    assert "\x00" not in str(caught.value) and "\\x00" in str(caught.value)
    with pytest.raises(
        BadStagePath, match=r"^Invalid stage path 'a+\.\.\.': longer than 1024 bytes$"
    ) as caught:
        clean_rel_path("a" * 5000)
    assert len(str(caught.value)) < 300


def test_location_helpers() -> None:
    assert parse_stage_ref("@~/x").is_user_stage
    assert parse_stage_ref("@%orders").table_parts() == (None, "orders")
    assert parse_stage_ref("@%sales.orders").table_parts() == ("sales", "orders")
    assert not parse_stage_ref("@s").is_table_stage
    with pytest.raises(BadStagePath, match="Not a table stage: @s"):
        parse_stage_ref("@s").table_parts()


# -- clean_rel_path / keys / prefixes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "cleaned"),
    [("", ""), ("/", ""), ("a", "a"), ("/a/b/", "a/b/"), ("//a", "a"), ("a/b.csv", "a/b.csv")],
)
def test_clean_rel_path(rel: str, cleaned: str) -> None:
    assert clean_rel_path(rel) == cleaned


def test_key_limit_is_bytes() -> None:
    assert clean_rel_path("a" * MAX_KEY_BYTES) == "a" * MAX_KEY_BYTES
    with pytest.raises(BadStagePath, match=f"longer than {MAX_KEY_BYTES} bytes"):
        clean_rel_path("a" * (MAX_KEY_BYTES + 1))


@pytest.mark.parametrize("key", ["stage/user/alice/x.csv", "a", ".hidden/x"])
def test_validate_key_accepts(key: str) -> None:
    assert validate_key(key) == key


_NOT_A_FILE_KEY = "a file key must be relative and must not end with '/'"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", _NOT_A_FILE_KEY),
        ("/a", _NOT_A_FILE_KEY),
        ("a/", _NOT_A_FILE_KEY),
        ("a//b", "empty segments ('//') are not allowed"),
        ("a/../b", "'..' segments are not allowed"),
        ("./a", "'.' segments are not allowed"),
        ("a/./b", "'.' segments are not allowed"),
        ("a%b", "character '%' is not allowed"),
    ],
)
def test_validate_key_refuses(key: str, reason: str) -> None:
    with pytest.raises(BadStagePath, match=re.escape(f"Invalid stage path '{key}': {reason}")):
        validate_key(key)


@pytest.mark.parametrize("prefix", ["", "a", "a/", "a/b.", "stage/user/al", "a/b ", "a/.h"])
def test_validate_prefix_accepts_partial_last_segment(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("/a", "a prefix must be relative"),
        ("a//", "empty segments ('//') are not allowed"),
        ("a/../", "'..' segments are not allowed"),
        ("a/..", "'..' segments are not allowed"),
        ("a./b", "segment 'a.' ends with a dot"),
        ("x:y", "character ':' is not allowed"),
        ("../", "'..' segments are not allowed"),
    ],
)
def test_validate_prefix_refuses(prefix: str, reason: str) -> None:
    # The message quotes the prefix up to the segment that is wrong.
    with pytest.raises(BadStagePath, match="^Invalid stage path '.*': " + re.escape(reason)):
        validate_prefix(prefix)


def test_join_key() -> None:
    assert join_key("stage/user/alice/", "a/b.csv") == "stage/user/alice/a/b.csv"
    assert join_key("stage/user/alice/", "//a/") == "stage/user/alice/a/"
    assert join_key("stage/user/alice/", "") == "stage/user/alice/"
    assert join_key("", "x") == "x"


@pytest.mark.parametrize(
    ("prefix", "rel", "reason"),
    [
        ("stage/user/alice", "x", "'stage/user/alice': a storage prefix must end with '/'"),
        ("stage/user/alice/", "../bob/x", "'../bob/x': '..' segments are not allowed"),
        ("stage/../", "x", "'stage/../': '..' segments are not allowed"),
        (
            "stage/user/alice/",
            "a" * 1010,
            f"longer than {MAX_KEY_BYTES} bytes",
        ),  # only the joined key is too long
    ],
)
def test_join_key_refuses(prefix: str, rel: str, reason: str) -> None:
    with pytest.raises(BadStagePath, match=re.escape(reason)):
        join_key(prefix, rel)


def test_relative_name() -> None:
    assert relative_name("stage/user/alice/", "stage/user/alice/d/x.csv") == "d/x.csv"
    with pytest.raises(
        BadStagePath, match=re.escape("Key 'stage/user/alice2/x.csv' is outside prefix 'stage/user/alice/'")
    ):
        relative_name("stage/user/alice/", "stage/user/alice2/x.csv")


def test_user_names_are_path_safe() -> None:
    assert USER_NAME_RE.match("alice_2")
    for bad in ["../admin", "a/b", "a.b", "a b", "1abc", "é", "a" * 65, ""]:
        assert not USER_NAME_RE.match(bad)


# -- PATTERN -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("ontime.*", "ontime_200.csv", True),
        ("ontime.*", "dir/ontime_200.csv", False),  # anchored at the start
        (".*ontime.*", "dir/ontime_200.csv", True),
        (".*\\.csv", "a/b.csv", True),
        (".*\\.csv", "a/b.csv.bk", False),  # anchored at the end
        ("a|b", "a", True),
        ("a|b", "ab", False),  # alternation stays inside the anchors
        ("a", "a\n", False),  # '$' would have matched before a final newline
        ("(?i)ONTIME.*", "ontime.csv", True),  # global flags, Rust style
        ("x/.*", "/x/y.csv", False),
        ("a)|(b", "a", None),  # refused: text cannot close the group and escape the anchors
        ("ONTIME(?i).*[.]CSV", "ONTIME_1.csv", True),  # flags mid-pattern apply to the rest, Rust style
        ("ONTIME(?i).*", "ontime_1.csv", False),
        ("(?s)a.b", "a\nb", True),
        ("a.b", "a\nb", False),
        ("a$", "a", True),  # '$' is the end of the text, never before a final newline
        ("a\\z", "a", True),
        ("é.", "éé", True),  # '.' is one character, not one byte
        ("\\p{Greek}+[.]csv", "αβ.csv", True),
        ("[[:digit:]]+", "42", True),
    ],
)
def test_compile_pattern(pattern: str, name: str, matches: bool | None) -> None:
    if matches is None:
        with pytest.raises(BadStagePath, match=r"^Invalid PATTERN "):
            compile_pattern(pattern)
        return
    assert compile_pattern(pattern).matches(name) is matches


@pytest.mark.parametrize("pattern", ["(", "*.csv", "[a-", "a{2,1}"])
def test_invalid_pattern(pattern: str) -> None:
    with pytest.raises(BadStagePath, match=r"^Invalid PATTERN '.*': "):
        compile_pattern(pattern)


# -- listing semantics with a real backend (stage-semantics.md §2 items 2-4) ---------------------

ALICE = user_stage("alice").prefix
STAGE_FILES = [
    "ontime_1.csv",
    "ontime_2.csv",
    "dir/ontime_200.csv",
    "a.csv",
    "a/x.csv",
    "ab.csv",
    "a/cd.csv",
    "a/cd.csv.bk",
    "p/x/y.csv",
    "p/z.csv",
    "px.csv",
]


@pytest.fixture
def stage(local_backend: LocalBackend) -> LocalBackend:
    for name in STAGE_FILES:
        put(local_backend, ALICE + name)
    put(local_backend, "stage/user/alice2/ontime_9.csv")  # another user: never visible in @~
    return local_backend


def ls(backend: LocalBackend, ref: str, pattern: str | None = None) -> list[str]:
    """LIST @ref [PATTERN = pattern] as the user alice: the ``name`` column."""
    location = parse_stage_ref(ref)
    listing = backend.list_files(ALICE + location.path)
    compiled = compile_pattern(pattern) if pattern is not None else None
    return [name for name, _ in filter_listing(listing, ALICE, location.path, compiled)]


@pytest.mark.parametrize(
    ("ref", "pattern", "names"),
    [
        ("@~", None, sorted(STAGE_FILES)),
        ("@~/a", None, ["a.csv", "a/cd.csv", "a/cd.csv.bk", "a/x.csv", "ab.csv"]),  # prefix, not folder
        ("@~/a/", None, ["a/cd.csv", "a/cd.csv.bk", "a/x.csv"]),
        ("@~/a/cd.csv", None, ["a/cd.csv", "a/cd.csv.bk"]),  # exact file plus longer names
        ("@~//a/", None, ["a/cd.csv", "a/cd.csv.bk", "a/x.csv"]),
        ("@~/nothing/", None, []),
        # REMOVE @~ PATTERN = 'ontime.*' must leave dir/ontime_200.csv alone
        ("@~", "ontime.*", ["ontime_1.csv", "ontime_2.csv"]),
        ("@~", ".*ontime.*", ["dir/ontime_200.csv", "ontime_1.csv", "ontime_2.csv"]),
        ("@~/dir/", "ontime.*", ["dir/ontime_200.csv"]),  # pattern is relative to the path
        # remainder after '@~/p/' is 'x/y.csv'; after '@~/p' it is '/x/y.csv'
        ("@~/p/", "x/.*", ["p/x/y.csv"]),
        ("@~/p", "x/.*", []),
        ("@~/p", "/x/.*", ["p/x/y.csv"]),
        ("@~/p", "x\\.csv", ["px.csv"]),
        ("@~/a", ".*\\.csv", ["a.csv", "a/cd.csv", "a/x.csv", "ab.csv"]),
    ],
)
def test_listing_semantics(stage: LocalBackend, ref: str, pattern: str | None, names: list[str]) -> None:
    assert ls(stage, ref, pattern) == names


def test_remove_with_pattern_at_root(stage: LocalBackend) -> None:
    location = parse_stage_ref("@~")
    pattern = compile_pattern("ontime.*")
    doomed = [f.key for _, f in filter_listing(stage.list_files(ALICE), ALICE, location.path, pattern)]
    assert stage.delete(doomed) == 2
    assert "dir/ontime_200.csv" in ls(stage, "@~")
    assert stage.exists("stage/user/alice2/ontime_9.csv")


def test_filter_listing_skips_keys_outside_location() -> None:
    # a listing of a wider prefix is narrowed to the location; names stay relative to the stage root
    when = datetime(2024, 1, 1, tzinfo=UTC)
    entries = [
        StagedFile(key, 1, None, when) for key in (ALICE + "a.csv", ALICE + "b.csv", "stage/user/bob/a.csv")
    ]
    assert [name for name, _ in filter_listing(entries, ALICE, "a")] == ["a.csv"]
