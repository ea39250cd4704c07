"""A planned statement: what prepare reports about it and how to run it on a session."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine.results import Result

if TYPE_CHECKING:
    from engine.session import Session

Params = Sequence[Any] | None


@dataclass(frozen=True)
class Plan:
    """One statement ready to run. ``schema`` is the result schema when known before running."""

    description: str
    is_query: bool
    run: Callable[[Session, Params], Result]
    schema: pa.Schema | None = None
    param_count: int = 0
    # Computes the result schema on demand (may touch the session's cursor).
    describe: Callable[[Session], pa.Schema | None] | None = field(default=None, repr=False)


def static_query(description: str, schema: pa.Schema, produce: Callable[[Session], pa.Table]) -> Plan:
    """A server-built result (SHOW USERS, LIST @stage ...) with a schema known up front."""

    def run(session: Session, params: Params) -> Result:
        return Result.of_table(produce(session).cast(schema))

    return Plan(description=description, is_query=True, run=run, schema=schema)


def static_update(description: str, action: Callable[[Session], int | None]) -> Plan:
    def run(session: Session, params: Params) -> Result:
        count = action(session)
        return Result.update(-1 if count is None else count)

    return Plan(description=description, is_query=False, run=run)
