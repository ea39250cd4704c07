"""The SQL engine: DuckDB with stages, users and load history; what flight/ may use of it.

flight/ imports only the names below. Inside, packages point one way (tests/test_import_layers.py):
core | ingest -> session -> statements -> plans -> stage_access -> catalog | sql | metadata -> leaves.
"""

from engine import metadata
from engine.catalog.users import ROOT_USER
from engine.config import EngineConfig
from engine.core import Engine
from engine.errors import (
    AuthenticationFailed,
    EngineError,
    PermissionDenied,
    QueryCancelled,
    StatementRejected,
    without_traceback,
)
from engine.ingest import IfExists, IfMissing, IngestTarget, ingest
from engine.results import Result
from engine.session import Prepared, Session, parameter_rows
from engine.statements.visibility import caller_visibility
from stages.errors import StageError

__all__ = [
    "ROOT_USER",
    "AuthenticationFailed",
    "Engine",
    "EngineConfig",
    "EngineError",
    "IfExists",
    "IfMissing",
    "IngestTarget",
    "PermissionDenied",
    "Prepared",
    "QueryCancelled",
    "Result",
    "Session",
    "StageError",
    "StatementRejected",
    "caller_visibility",
    "ingest",
    "metadata",
    "parameter_rows",
    "without_traceback",
]
