"""PATTERN runs on RE2 (issue 11 item 3): linear-time matching, clear refusals of what RE2 lacks."""

from __future__ import annotations

import pytest

from stages.errors import BadStagePath
from stages.paths import MAX_PATTERN_CHARS, compile_pattern

RE2 = " (PATTERN uses linear-time RE2 syntax)"


def test_nested_quantifiers_are_matched_in_linear_time() -> None:
    # With Python's backtracking `re` this takes about 2**40 steps (hours); RE2 answers at once.
    assert compile_pattern("(a+)+b").matches("a" * 40) is False
    assert compile_pattern("(a+)+").matches("a" * 40) is True
    assert compile_pattern("(a|aa)*c").matches("a" * 5000) is False
    assert compile_pattern("(.*a){20}").matches("a" * 1000) is True


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (
            "(a)\\1",
            "backreferences such as \\1 are not supported" + RE2,
        ),
        ("(x)(y)\\2.csv", "backreferences such as \\2 are not supported" + RE2),
        (".*(?=[.]csv)", "lookahead (?=...) is not supported" + RE2),
        (
            "(?!tmp).*",
            "negative lookahead (?!...) is not supported" + RE2,
        ),
        ("(?<=a)b", "lookbehind (?<=...) is not supported" + RE2),
        (
            "(?<!a)b",
            "negative lookbehind (?<!...) is not supported" + RE2,
        ),
        ("(?>a+)b", "atomic groups (?>...) are not supported" + RE2),
        ("a++", "possessive quantifiers such as ++ are not supported" + RE2),
        ("a*+b", "possessive quantifiers such as *+ are not supported" + RE2),
        ("(?x) a # c", "verbose mode (?x) is not supported" + RE2),
        ("a(?#note)", "comments (?#...) are not supported" + RE2),
        (
            ".*[.]csv\\Z",
            "\\Z is not supported: use $ or \\z for the end of the name" + RE2,
        ),
        ("(unclosed", "missing ): (unclosed"),
        ("a)|(b", "unexpected ): a)|(b"),
        (
            "*.csv",
            "no argument for repetition operator: * (PATTERN is a regular expression, not a glob:"
            " '.*[.]csv', not '*.csv')",
        ),
        ("a{1001}", "invalid repetition size: {1001}"),
    ],
)
def test_unsupported_constructs_are_refused_by_name(pattern: str, reason: str) -> None:
    with pytest.raises(BadStagePath) as caught:
        compile_pattern(pattern)
    assert str(caught.value) == f"Invalid PATTERN '{pattern}': {reason}"


def test_pattern_length_is_capped() -> None:
    compile_pattern("a" * MAX_PATTERN_CHARS)
    with pytest.raises(BadStagePath, match=r"^Invalid PATTERN 'a{120}\.\.\.': longer than 1024 characters$"):
        compile_pattern("a" * (MAX_PATTERN_CHARS + 1))


def test_pattern_compiling_to_a_huge_program_is_refused() -> None:
    # Short text, but 1000 copies of the Unicode letter class: over the per-pattern memory budget.
    with pytest.raises(BadStagePath) as caught:
        compile_pattern("\\pL{1000}")
    assert str(caught.value) == (
        "Invalid PATTERN '\\pL{1000}': too large to compile: use fewer or smaller repetitions" + RE2
    )


def test_lone_surrogate_is_refused_not_a_traceback() -> None:
    with pytest.raises(BadStagePath, match=r"^Invalid PATTERN '.*': not valid UTF-8 \(lone surrogate\)$"):
        compile_pattern("a\ud800")


def test_names_no_utf8_can_spell_match_nothing() -> None:
    assert compile_pattern(".*").matches("a\udcff") is False


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("\\d+", "42", True),
        ("\\d+", "\u0664\u0662", False),  # RE2's \d is ASCII (Rust's is Unicode): \pN covers both
        ("\\pN+", "\u0664\u0662", True),
        ("(?i)É[.]CSV", "é.csv", True),  # case folding is Unicode-aware
        ("(?U)a+", "aaa", True),  # non-greedy flag: still a full match
        ("\\Qa.b\\E", "a.b", True),  # quoted literal text
        ("\\Qa.b\\E", "axb", False),
        ("(?P<year>[0-9]{4})/.*", "2024/x.csv", True),  # named groups are accepted
        ("(?<year>[0-9]{4})/.*", "2024/x.csv", True),
        ("", "", True),
    ],
)
def test_re2_syntax(pattern: str, name: str, matches: bool) -> None:
    assert compile_pattern(pattern).matches(name) is matches
