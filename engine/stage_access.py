"""Stage resolution and file operations: @ref -> (stage, storage prefix), with privilege checks.

Every path is validated (stages.paths) before any storage call; the user stage needs no grant
and always means the caller's own stage.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
from sqlglot import exp

from engine.catalog.file_formats import FileFormats
from engine.catalog.stages import StageCatalog, StagePrivilege
from engine.errors import ObjectAlreadyExists, PermissionDenied, StatementRejected
from stages.errors import StageError, StageNotFound, StorageError
from stages.formats import DEFAULT_FORMAT, FORMAT_TYPES, normalize_format_options
from stages.infer import infer_schema
from stages.model import Stage, StageKind, table_stage, user_stage
from stages.native import NativeParquetReader
from stages.paths import (
    StageLocation,
    compile_pattern,
    filter_listing,
    join_key,
    parse_stage_ref,
    relative_name,
    validate_key,
)
from stages.scan import scan_files
from stages.storage import load_backend
from stages.storage.base import StagedFile, StorageBackend
from stages.storage.local import LocalBackend

log = logging.getLogger("stageflight")

LIST_SCHEMA = pa.schema(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("size", pa.uint64(), nullable=False),
        pa.field("md5", pa.string()),
        pa.field("last_modified", pa.string(), nullable=False),
        pa.field("creator", pa.string()),
    ]
)
PRESIGN_SCHEMA = pa.schema(
    [
        pa.field("method", pa.string(), nullable=False),
        pa.field("headers", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
    ]
)
MAX_PRESIGN_EXPIRE = 7 * 24 * 3600

# CREATE/DROP STAGE of one name run one at a time (a lock per stripe of names, so a slow wipe of
# one stage never holds up DDL on the others).
_DDL_LOCK_STRIPES = 64

# (method, key, expire seconds, content type, binding) -> URL served by the server's HTTP side.
# The binding (engine.catalog.presign_binding) ties the URL to its issuer's user, stage and grant.
LocalSigner = Callable[[str, str, int, str | None, str | None], str]
# (schema or None, table) of a table-stage reference -> (schema, table, owner or None) of the table
# the session means by it, or None when there is no such table.
TableFinder = Callable[[str | None, str], tuple[str, str, str | None] | None]
# (schema, table, table privilege) -> whether the session may use it (engine.statements.access).
TablePrivilegeCheck = Callable[[str, str, str], bool]
# A table stage follows its table's privileges (issue 13, as Snowflake): READ ~ SELECT, WRITE ~ INSERT.
TABLE_STAGE_PRIVILEGE = {StagePrivilege.READ: "SELECT", StagePrivilege.WRITE: "INSERT"}
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class ResolvedStage:
    stage: Stage
    location: StageLocation
    backend: StorageBackend

    @property
    def root_key(self) -> str:
        # An external stage's backend is rooted at its own URL; the others share the storage root.
        return "" if self.stage.kind is StageKind.EXTERNAL else self.stage.prefix

    @property
    def location_key(self) -> str:
        return self.root_key + self.location.path


def format_last_modified(when: datetime) -> str:
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d} +0000"


class StageAccess:
    def __init__(
        self,
        catalog: StageCatalog,
        file_formats: FileFormats,
        storage_root: str,
        storage_options: Mapping[str, str] | None = None,
        *,
        batch_rows: int,
        threads: int | None = None,
        name_lock: Callable[[str], AbstractContextManager[None]] | None = None,
    ) -> None:
        self.catalog = catalog
        self._file_formats = file_formats
        self._batch_rows = batch_rows
        self.storage = load_backend(storage_root, storage_options or {})
        self._external_backends: dict[tuple[str, str, tuple[tuple[str, str], ...]], StorageBackend] = {}
        self._backends_lock = threading.Lock()
        self.local_signer: LocalSigner | None = None
        self.native_parquet = (
            # --threads bounds this DuckDB too, or a node told to use one core would use them all.
            NativeParquetReader(self.storage, threads) if isinstance(self.storage, LocalBackend) else None
        )
        self._gc_lock = threading.Lock()
        self._ddl_locks = [threading.Lock() for _ in range(_DDL_LOCK_STRIPES)]
        # Several nodes on one lake: the name's lock on every node (nothing to take on one).
        self._name_lock = name_lock or (lambda name: nullcontext())

    # -- resolution ------------------------------------------------------------------
    def resolve(
        self,
        ref: str,
        user: str,
        is_admin: bool,
        privilege: StagePrivilege,
        find_table: TableFinder,
        may_use_table: TablePrivilegeCheck,
    ) -> ResolvedStage:
        location = parse_stage_ref(ref)
        if location.is_user_stage:
            return ResolvedStage(user_stage(user), location, self.storage)
        if location.is_table_stage:
            stage = self._table_stage(location, is_admin, privilege, find_table, may_use_table)
            return ResolvedStage(stage, location, self.storage)
        stage = self.catalog.get(location.stage_name)
        self.catalog.require(stage, user, is_admin, privilege)
        return ResolvedStage(stage, location, self.backend_for(stage))

    def _table_stage(
        self,
        location: StageLocation,
        is_admin: bool,
        privilege: StagePrivilege,
        find_table: TableFinder,
        may_use_table: TablePrivilegeCheck,
    ) -> Stage:
        """``@%t``: the stage of the table ``t`` names; reading it needs SELECT on the table and
        writing it INSERT (its owner and root have both)."""
        schema, table = location.table_parts()
        found = find_table(schema, table)
        if found is None:
            named = f"{schema}.{table}" if schema else table
            raise StageError(f"Table stage @%{table}: table {named} does not exist")
        real_schema, real_table, _ = found
        needed = TABLE_STAGE_PRIVILEGE[privilege]
        if not (is_admin or may_use_table(real_schema, real_table, needed)):
            raise PermissionDenied(
                f"Permission denied: {needed} on {real_schema}.{real_table} (table stage @%{real_table})"
            )
        return table_stage(real_schema, real_table)

    def copy_table_stage(self, old: Stage, new: Stage) -> list[tuple[StagedFile, StagedFile]]:
        """Copy a renamed table's stage files to the new name (ALTER TABLE ... RENAME, after commit).

        Returns (old file, copy) pairs; the caller deletes the old files once the load history
        follows the copies.
        """
        copied = []
        for old_file in list(self.storage.list_files(old.prefix)):
            new_key = new.prefix + old_file.key[len(old.prefix) :]
            source = self.storage.open_input_stream(old_file.key)
            with source, self.storage.open_output(new_key) as target:
                while chunk := source.read(_COPY_CHUNK):
                    target.write(chunk)
            copied.append((old_file, self.storage.stat(new_key)))
        return copied

    def backend_for(self, stage: Stage) -> StorageBackend:
        if stage.kind is not StageKind.EXTERNAL:
            return self.storage
        cache_key = (stage.name, stage.url or "", tuple(sorted(stage.connection.items())))
        with self._backends_lock:
            backend = self._external_backends.get(cache_key)
            if backend is None:
                backend = load_backend(stage.url or "", stage.connection)
                if hasattr(backend, "label"):  # storage errors name the stage and its endpoint
                    endpoint = stage.connection.get("ENDPOINT_URL") or "the default AWS endpoint"
                    setattr(backend, "label", f"stage @{stage.name} at {endpoint}, ")  # noqa: B010
                # One cached backend per stage: a replaced stage drops its old one.
                self._external_backends = {
                    k: v for k, v in self._external_backends.items() if k[0] != stage.name
                }
                self._external_backends[cache_key] = backend
        return backend

    def check_external(self, stage: Stage) -> None:
        """Build the backend, so a malformed URL or CONNECTION fails at CREATE STAGE.

        The object store is not contacted (as in Databend and Snowflake): credentials and
        reachability are checked at first use, whose error names the stage and the endpoint.
        """
        self.backend_for(stage)

    # -- LIST / REMOVE / PRESIGN -------------------------------------------------------
    def list_files(self, resolved: ResolvedStage, pattern: str | None) -> list[tuple[str, StagedFile]]:
        regex = compile_pattern(pattern) if pattern is not None else None
        files = resolved.backend.list_files(resolved.location_key)
        return list(filter_listing(files, resolved.root_key, resolved.location.path, regex))

    def list_table(self, resolved: ResolvedStage, pattern: str | None) -> pa.Table:
        rows = [
            {
                "name": name,
                "size": f.size,
                "md5": None if resolved.stage.is_internal else f.etag,
                "last_modified": format_last_modified(f.last_modified),
                "creator": None,
            }
            for name, f in self.list_files(resolved, pattern)
        ]
        return pa.Table.from_pylist(rows, schema=LIST_SCHEMA)

    def remove(self, resolved: ResolvedStage, pattern: str | None) -> int:
        keys = [f.key for _, f in self.list_files(resolved, pattern)]
        removed = 0
        for start in range(0, len(keys), 1000):  # batches, as Databend and S3 DeleteObjects do
            removed += resolved.backend.delete(keys[start : start + 1000])
        return removed

    def presign(
        self,
        resolved: ResolvedStage,
        upload: bool,
        expire: int,
        content_type: str | None,
        binding: str | None = None,
    ) -> pa.Table:
        if not 0 < expire <= MAX_PRESIGN_EXPIRE:
            raise StatementRejected(
                f"EXPIRE must be between 1 and {MAX_PRESIGN_EXPIRE} seconds, got {expire}"
            )
        if not resolved.location.path or resolved.location.path.endswith("/"):
            raise StatementRejected(
                f"PRESIGN needs a file path, not a folder: {resolved.stage.ref}/{resolved.location.path}"
            )
        key = validate_key(resolved.location_key)
        method = "PUT" if upload else "GET"
        native = resolved.backend.presign(key, method, expire, content_type)
        if native is not None:
            return _presign_row(native.method, dict(native.headers), native.url)
        if self.local_signer is None:
            raise StageError("This storage does not support presigned URLs and the HTTP side is disabled")
        headers = {"Content-Type": content_type} if content_type and upload else {}
        return _presign_row(method, headers, self.local_signer(method, key, expire, content_type, binding))

    def file_format(self, statement_format: Mapping[str, str], resolved: ResolvedStage) -> dict[str, str]:
        """Statement FILE_FORMAT > stage FILE_FORMAT > Parquet (Databend's precedence)."""
        for options in (statement_format, resolved.stage.file_format):
            if options:
                return normalize_format_options(self._file_formats.resolve(options))
        return {"TYPE": DEFAULT_FORMAT}

    def _query_format(self, resolved: ResolvedStage, fmt: Any) -> dict[str, str]:
        """``FILE_FORMAT => 'CSV'`` names a type or a named format; absent, the stage's format applies."""
        if not isinstance(fmt, str):
            return self.file_format({}, resolved)
        named = {"TYPE": fmt.upper()} if fmt.upper() in FORMAT_TYPES else {"FORMAT_NAME": fmt}
        return self.file_format(named, resolved)

    @staticmethod
    def table_function_args(name: str, args: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The LOCATION and the argument values of ``INFER_SCHEMA(...)`` / ``LIST_STAGE(...)``."""
        values = {k.upper(): _literal(v) for k, v in args.items()}
        location = values.get("LOCATION")
        if not isinstance(location, str) or not location.startswith("@"):
            raise StatementRejected(f"{name.upper()} needs LOCATION => '@stage[/path]'")
        return location, values

    def table_function(self, name: str, resolved: ResolvedStage, values: Mapping[str, Any]) -> pa.Table:
        """``INFER_SCHEMA(LOCATION => '@...', ...)`` and ``LIST_STAGE(LOCATION => '@...', ...)``.

        ``values`` come from :meth:`table_function_args`; ``resolved`` is their LOCATION.
        """
        pattern = values.get("PATTERN") if isinstance(values.get("PATTERN"), str) else None
        if name.upper() == "LIST_STAGE":
            return self.list_table(resolved, pattern)
        unknown = sorted(
            set(values) - {"LOCATION", "PATTERN", "FILE_FORMAT", "MAX_FILE_COUNT", "MAX_RECORDS_PRE_FILE"}
        )
        if unknown:
            raise StatementRejected(f"Unknown INFER_SCHEMA argument {unknown[0]}")
        listed = self.list_files(resolved, pattern)
        max_files = values.get("MAX_FILE_COUNT")
        return infer_schema(
            resolved.backend,
            [(n, f.key) for n, f in listed],
            self._query_format(resolved, values.get("FILE_FORMAT")),
            int(max_files) if max_files else None,
        )

    def query_format(self, resolved: ResolvedStage, options: Mapping[str, Any]) -> dict[str, str]:
        """The file format a query on ``resolved`` reads: ``FILE_FORMAT =>``, the stage's, or Parquet."""
        fmt = options.get("FILE_FORMAT")
        return self._query_format(resolved, _literal(fmt) if fmt is not None else None)

    def scan(
        self, resolved: ResolvedStage, options: Mapping[str, Any], with_metadata: bool = True
    ) -> pa.RecordBatchReader:
        """``SELECT ... FROM @ref (FILE_FORMAT => ..., PATTERN => ..., FILES => (...))`` (ref resolved).

        FILES names files relative to the location, as COPY's FILES does (each path is validated,
        a missing file is an error); with FILES, PATTERN is not applied (as COPY).
        """
        unknown = sorted(set(options) - {"FILE_FORMAT", "PATTERN", "FILES"})
        if unknown:
            raise StatementRejected(f"Unknown stage option {unknown[0]}: use FILE_FORMAT, PATTERN or FILES")
        file_format = self.query_format(resolved, options)
        if "FILES" in options:
            listed = self.named_files(resolved, _file_names(options["FILES"]))
        else:
            pattern = _literal(options["PATTERN"]) if "PATTERN" in options else None
            listed = self.list_files(resolved, pattern if isinstance(pattern, str) else None)
        return scan_files(
            resolved.backend,
            [(n, f.key) for n, f in listed],
            file_format,
            self._batch_rows,
            with_metadata,
            not_parquet_hint="FILE_FORMAT" not in options and not resolved.stage.file_format,
        )

    def named_files(self, resolved: ResolvedStage, names: Sequence[str]) -> list[tuple[str, StagedFile]]:
        """``FILES => ('a.csv', ...)``: each name joined to the location (a folder) and validated."""
        location = resolved.location_key
        if resolved.location.path and not resolved.location.path.endswith("/"):
            location += "/"
        found = []
        for name in names:
            key = join_key(location, name.lstrip("/"))
            rel = relative_name(resolved.root_key, key)
            try:
                found.append((rel, resolved.backend.stat(key)))
            except StorageError as exc:
                if not str(exc).startswith("File does not exist"):
                    raise
                raise StorageError(f"File does not exist: {resolved.stage.ref}/{rel} (FILES)") from None
        return found

    # -- lifecycle -------------------------------------------------------------------------
    @contextmanager
    def _ddl_lock(self, name: str) -> Iterator[None]:
        """CREATE and DROP of one stage name, one at a time: on this node, and on every node sharing
        the lake, since a CREATE that loses the name must not have wiped the winner's files."""
        with self._ddl_locks[hash(name) % len(self._ddl_locks)], self._name_lock(name):
            yield

    def create_stage(
        self,
        stage: Stage,
        user: str,
        is_admin: bool,
        *,
        replace: bool,
        if_not_exists: bool,
        validate: Callable[[Stage], None] | None = None,
    ) -> None:
        """CREATE [OR REPLACE] STAGE [IF NOT EXISTS].

        An existing stage's files are only ever deleted by its owner's (or root's) REPLACE. Files
        under the prefix of a name with no catalog row are leftovers (an unload or presigned upload
        that landed after a DROP's wipe) and are deleted before the row is inserted, under the
        name's lock, so a CREATE that finds the name taken never gets that far. ``validate`` holds
        checks that need I/O (an external stage's endpoint and first listing): they run once the
        caller is known to be allowed the name, outside the lock.
        """
        if not _may_create(self.catalog.find(stage.name), stage.name, user, is_admin, replace, if_not_exists):
            return
        if validate is not None:
            validate(stage)
        with self._ddl_lock(stage.name):
            existing = self.catalog.find(stage.name)  # again: a concurrent CREATE may have won
            if not _may_create(existing, stage.name, user, is_admin, replace, if_not_exists):
                return
            stale = {s.prefix: s for s in (existing, stage) if s is not None and s.is_internal}
            for old in stale.values():
                self.wipe(old)
            self.catalog.create(stage, replace=existing is not None)

    def drop_stage(self, name: str, user: str, is_admin: bool, *, if_exists: bool) -> None:
        with self._ddl_lock(name):
            stage = self.catalog.find(name)
            if stage is None:
                if if_exists:
                    return
                raise StageNotFound(f"Stage does not exist: @{name}")
            require_owner(stage, user, is_admin, "drop")
            # Files first: if the wipe fails the stage is still there to drop again. Files written
            # after the wipe by a racing unload are leftovers, deleted by the next CREATE of the name.
            self.wipe(stage)
            self.catalog.delete(name)

    def wipe(self, stage: Stage) -> int:
        """Delete every file of an internal stage (DROP STAGE, CREATE OR REPLACE, DROP USER)."""
        if not stage.is_internal:
            return 0
        return self.storage.delete_prefix(stage.prefix)

    def drop_user_stage(self, user: str) -> None:
        try:
            self.wipe(user_stage(user))
        except StageError:
            log.exception("could not remove the user stage of %s", user)

    def vacuum_user_stages(self, retention_days: int) -> tuple[int, int]:
        """Delete user-stage files older than the retention. Returns (files, bytes) removed."""
        if retention_days < 0:
            raise StatementRejected("Retention must be zero or more days")
        cutoff = datetime.now(UTC) - timedelta(days=retention_days)
        with self._gc_lock:
            old = [f for f in self.storage.list_files("stage/user/") if f.last_modified < cutoff]
            removed = self.storage.delete([f.key for f in old])
        log.info("user-stage GC removed %d files older than %d days", removed, retention_days)
        return removed, sum(f.size for f in old)


def _literal(node: Any) -> Any:
    if isinstance(node, exp.Tuple | exp.Paren | exp.Array):
        items = node.expressions if not isinstance(node, exp.Paren) else [node.this]
        return [_literal(i) for i in items]
    if isinstance(node, exp.Literal):
        return node.this
    return node.name if hasattr(node, "name") else str(node)


def _file_names(value: Any) -> list[str]:
    """The names of ``FILES => ('a.csv', 'b.csv')``: a parenthesised list of string literals."""
    items = value.expressions if isinstance(value, exp.Tuple) else None
    if not items or not all(isinstance(i, exp.Literal) and i.is_string for i in items):
        raise StatementRejected("Stage option FILES takes a list of file names: FILES => ('a.csv', 'b.csv')")
    return [str(i.this) for i in items]


def _presign_row(method: str, headers: dict[str, str], url: str) -> pa.Table:
    return pa.Table.from_pylist(
        [{"method": method, "headers": json.dumps(headers), "url": url}], schema=PRESIGN_SCHEMA
    )


def _may_create(
    existing: Stage | None, name: str, user: str, is_admin: bool, replace: bool, if_not_exists: bool
) -> bool:
    """False: IF NOT EXISTS found the stage, nothing to do. Raises if the name is not the caller's to take."""
    if existing is None:
        return True
    if if_not_exists:
        return False
    if not replace:
        raise ObjectAlreadyExists(f"Stage already exists: @{name}")
    require_owner(existing, user, is_admin, "replace")
    return True


def require_owner(stage: Stage, user: str, is_admin: bool, action: str) -> None:
    if not (is_admin or stage.creator == user):
        raise PermissionDenied(f"Permission denied: only the owner of @{stage.name} or root may {action} it")
