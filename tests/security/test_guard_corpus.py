"""The adversarial corpus against the guard alone: every escape refused, every legitimate query kept."""

from __future__ import annotations

import re

import pytest

from engine.errors import StatementRejected
from engine.sql import guard
from tests.security.escape_corpus import ALLOWED_QUERIES, ESCAPE_ATTEMPTS


def _id(sql: str) -> str:
    return re.sub(r"\s+", " ", sql)[:60].encode("unicode_escape").decode("ascii")


def test_corpus_sizes() -> None:
    assert len(ESCAPE_ATTEMPTS) >= 60
    assert len(ALLOWED_QUERIES) >= 15


@pytest.mark.parametrize(("sql", "fragment"), ESCAPE_ATTEMPTS, ids=[_id(s) for s, _ in ESCAPE_ATTEMPTS])
def test_escape_attempt_is_refused(sql: str, fragment: str) -> None:
    with pytest.raises(StatementRejected) as err:
        for tree in guard.validate(sql):
            guard.regenerate(tree)
    message = str(err.value)
    assert fragment in message
    assert "\n" not in message and "\x1b" not in message


@pytest.mark.parametrize("sql", ALLOWED_QUERIES, ids=[_id(s) for s in ALLOWED_QUERIES])
def test_allowed_query_passes(sql: str) -> None:
    for tree in guard.validate(sql):
        assert guard.regenerate(tree)
