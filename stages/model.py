"""The stage model: what a stage is and where its files live in storage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from stages.errors import BadStagePath
from stages.paths import STAGE_NAME_RE, USER_NAME_RE


class StageKind(StrEnum):
    """Stage types, spelled as Databend's ``system.stages.stage_type``."""

    LEGACY_INTERNAL = "LegacyInternal"
    INTERNAL = "Internal"
    USER = "User"
    TABLE = "Table"
    EXTERNAL = "External"


_EMPTY: Mapping[str, str] = MappingProxyType({})


def _frozen(options: Mapping[str, str], upper: bool) -> Mapping[str, str]:
    """A read-only copy, so a frozen Stage cannot be changed through a shared dict."""
    return MappingProxyType({(k.upper() if upper else k): v for k, v in options.items()})


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise BadStagePath(message)


@dataclass(frozen=True)
class Stage:
    """A stage definition.

    For a user stage ``name`` is the user name (as in Databend's in-memory user stage); for a
    table stage ``name`` is ``'%schema.table'`` and ``schema``/``table`` hold the parts.
    ``connection`` holds external-stage credentials and is kept out of ``repr``.
    """

    name: str
    kind: StageKind
    url: str | None = None
    file_format: Mapping[str, str] = field(default_factory=dict, hash=False)
    comment: str | None = None
    creator: str | None = None
    created_on: datetime | None = None
    connection: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)
    schema: str | None = None
    table: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", StageKind(self.kind))
        object.__setattr__(self, "file_format", _frozen(self.file_format, upper=True))
        object.__setattr__(self, "connection", _frozen(self.connection, upper=False))
        self._validate()

    def _validate(self) -> None:
        # Names end up as storage path segments, so they are checked even for direct construction.
        kind = self.kind
        if kind is StageKind.USER:
            _require(bool(USER_NAME_RE.match(self.name)), f"User name {self.name!r} cannot name a stage")
        elif kind is StageKind.TABLE:
            for part in (self.schema, self.table):
                _require(part is not None and bool(STAGE_NAME_RE.match(part)), f"Bad table stage {part!r}")
            _require(self.name == f"%{self.schema}.{self.table}", "A table stage is named '%schema.table'")
        else:
            _require(bool(STAGE_NAME_RE.match(self.name)), f"Invalid stage name {self.name!r}")
        _require((kind is StageKind.EXTERNAL) == bool(self.url), "Only external stages have (and need) a URL")

    @property
    def prefix(self) -> str:
        """Storage prefix of the stage root (ends with ``'/'``); for external stages the URL."""
        if self.kind is StageKind.LEGACY_INTERNAL:
            return f"stage/{self.name}/"
        if self.kind is StageKind.INTERNAL:
            return f"stage/internal/{self.name}/"
        if self.kind is StageKind.USER:
            return f"stage/user/{self.name}/"
        if self.kind is StageKind.TABLE:
            return f"stage/table/{self.schema}/{self.table}/"
        url = self.url or ""
        return url if url.endswith("/") else url + "/"

    @property
    def is_internal(self) -> bool:
        """Files belong to the server (dropped with the stage), unlike an external stage's."""
        return self.kind is not StageKind.EXTERNAL

    @property
    def ref(self) -> str:
        """How SQL spells this stage: ``@~``, ``@name`` or ``@%schema.table``."""
        if self.kind is StageKind.USER:
            return "@~"
        return f"@{self.name}"


def user_stage(user: str) -> Stage:
    """The implicit stage ``@~`` of ``user`` (never stored, built on demand).

    Raises:
        BadStagePath: the user name is not a safe path segment (``USER_NAME_RE``).
    """
    if not USER_NAME_RE.match(user):
        raise BadStagePath(f"User name {user!r} cannot be used as a stage path segment")
    return Stage(name=user, kind=StageKind.USER, creator=user)


def table_stage(schema: str, table: str) -> Stage:
    """The implicit stage ``@%table`` of ``schema.table``.

    Raises:
        BadStagePath: schema or table is not a plain identifier.
    """
    return Stage(name=f"%{schema}.{table}", kind=StageKind.TABLE, schema=schema, table=table)


def internal_stage(
    name: str,
    *,
    file_format: Mapping[str, str] | None = None,
    comment: str | None = None,
    creator: str | None = None,
    created_on: datetime | None = None,
) -> Stage:
    """A named internal stage (``CREATE STAGE name``), stored under ``stage/internal/<name>/``.

    Raises:
        BadStagePath: the name does not match ``STAGE_NAME_RE``.
    """
    return Stage(
        name=name,
        kind=StageKind.INTERNAL,
        file_format=file_format or _EMPTY,
        comment=comment,
        creator=creator,
        created_on=created_on,
    )


def external_stage(
    name: str,
    url: str,
    *,
    connection: Mapping[str, str] | None = None,
    file_format: Mapping[str, str] | None = None,
    comment: str | None = None,
    creator: str | None = None,
    created_on: datetime | None = None,
) -> Stage:
    """A named external stage (``CREATE STAGE name URL='s3://...'``).

    Raises:
        BadStagePath: bad name or empty URL.
    """
    return Stage(
        name=name,
        kind=StageKind.EXTERNAL,
        url=url,
        connection=connection or _EMPTY,
        file_format=file_format or _EMPTY,
        comment=comment,
        creator=creator,
        created_on=created_on,
    )
