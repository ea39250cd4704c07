"""The stage model: kinds, exact storage prefixes, constructors and secret hygiene."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest

from stages.errors import BadStagePath
from stages.model import Stage, StageKind, external_stage, internal_stage, table_stage, user_stage


def test_kind_values_match_databend() -> None:
    assert [k.value for k in StageKind] == ["LegacyInternal", "Internal", "User", "Table", "External"]
    assert StageKind("Internal") is StageKind.INTERNAL
    assert f"{StageKind.USER}" == "User"


@pytest.mark.parametrize(
    ("stage", "prefix"),
    [
        (Stage(name="old", kind=StageKind.LEGACY_INTERNAL), "stage/old/"),
        (internal_stage("s1"), "stage/internal/s1/"),
        (user_stage("alice"), "stage/user/alice/"),
        (table_stage("main", "orders"), "stage/table/main/orders/"),
        (external_stage("ext", "s3://bucket/path/"), "s3://bucket/path/"),
        (external_stage("ext", "s3://bucket/path"), "s3://bucket/path/"),
        (external_stage("ext", "fs:///data/in/"), "fs:///data/in/"),
    ],
)
def test_prefix_per_kind(stage: Stage, prefix: str) -> None:
    assert stage.prefix == prefix


def test_user_stage() -> None:
    stage = user_stage("alice")
    assert (stage.kind, stage.name, stage.ref, stage.creator) == (StageKind.USER, "alice", "@~", "alice")
    assert stage.is_internal
    assert user_stage("alice") == stage  # built in memory, equal every time


@pytest.mark.parametrize("user", ["../admin", "a/b", "", "1x", "a.b", "a b", "é", "a" * 65, "~"])
def test_user_stage_refuses_unsafe_user_names(user: str) -> None:
    with pytest.raises(
        BadStagePath, match=re.escape(f"User name '{user}' cannot be used as a stage path segment")
    ):
        user_stage(user)


def test_table_stage() -> None:
    stage = table_stage("sales", "orders")
    assert (stage.kind, stage.schema, stage.table, stage.name) == (
        StageKind.TABLE,
        "sales",
        "orders",
        "%sales.orders",
    )
    assert stage.ref == "@%sales.orders"


@pytest.mark.parametrize(("schema", "table"), [("main", "../x"), ("a/b", "t"), ("main", ""), ("..", "t")])
def test_table_stage_refuses_unsafe_names(schema: str, table: str) -> None:
    with pytest.raises(BadStagePath, match="^Bad table stage '"):
        table_stage(schema, table)


def test_internal_stage_fields() -> None:
    when = datetime(2024, 1, 2, tzinfo=UTC)
    stage = internal_stage(
        "s1", file_format={"type": "CSV", "Skip_Header": "1"}, comment="c", creator="root", created_on=when
    )
    assert (stage.kind, stage.name, stage.comment, stage.creator, stage.created_on) == (
        StageKind.INTERNAL,
        "s1",
        "c",
        "root",
        when,
    )
    assert dict(stage.file_format) == {"TYPE": "CSV", "SKIP_HEADER": "1"}  # upper-case keys
    assert stage.url is None and stage.ref == "@s1"


@pytest.mark.parametrize("name", ["", "1s", "a-b", "a/b", "..", "~", "a" * 129])
def test_internal_stage_refuses_bad_names(name: str) -> None:
    with pytest.raises(BadStagePath, match=re.escape(f"Invalid stage name '{name}'")):
        internal_stage(name)


def test_url_only_for_external() -> None:
    with pytest.raises(BadStagePath, match=r"Only external stages have \(and need\) a URL"):
        Stage(name="s", kind=StageKind.INTERNAL, url="s3://b/")
    with pytest.raises(BadStagePath, match=r"Only external stages have \(and need\) a URL"):
        Stage(name="s", kind=StageKind.EXTERNAL)


def test_connection_never_in_repr() -> None:
    stage = external_stage("ext", "s3://b/p/", connection={"aws_secret_key": "hunter2", "aws_key_id": "AKIA"})
    assert "hunter2" not in repr(stage) and "AKIA" not in repr(stage)
    assert "hunter2" not in str(stage)
    assert stage.connection["aws_secret_key"] == "hunter2"
    assert not stage.is_internal


def test_stage_is_immutable_and_hashable() -> None:
    options = {"type": "csv"}
    stage = internal_stage("s1", file_format=options)
    options["type"] = "parquet"  # the caller's dict is copied
    assert stage.file_format["TYPE"] == "csv"
    with pytest.raises(TypeError, match="does not support item assignment"):
        stage.file_format["TYPE"] = "x"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'name'"):
        stage.name = "other"  # type: ignore[misc]
    assert {stage: 1}[internal_stage("s1", file_format={"TYPE": "csv"})] == 1


def test_kind_accepts_plain_strings() -> None:
    stage = Stage(name="s1", kind="Internal")  # type: ignore[arg-type]  # e.g. read back from a catalog
    assert stage.kind is StageKind.INTERNAL and stage.prefix == "stage/internal/s1/"
