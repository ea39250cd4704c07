"""The engine: one locked DuckDB database, its users and stages, and the sessions that run statements."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import duckdb

from engine.catalog.database import Database
from engine.catalog.file_formats import FileFormats
from engine.catalog.load_history import LoadHistory
from engine.catalog.login_failures import SharedLoginFailures
from engine.catalog.presign_binding import scopes_for, stamp, why_revoked
from engine.catalog.query_log import QueryLog
from engine.catalog.stages import StageCatalog, StagePrivilege
from engine.catalog.table_owners import OWNERS_TABLE
from engine.catalog.users import ROOT_USER, UserDirectory
from engine.config import EngineConfig
from engine.plans import RunContext
from engine.session import Session
from engine.sql.catalog_policy import configure_catalogs_from
from engine.stage_access import ResolvedStage, StageAccess

log = logging.getLogger("stageflight")

GC_INTERVAL_SECONDS = 3600.0
# The shared catalog's name for the key signing local presigned URLs (server_secrets).
PRESIGN_KEY_NAME = "presign_key"
# A temp file untouched this long belongs to a dead write (a live one is written to, or is
# registered as in progress by this process); another server sharing the storage may own younger ones.
TEMP_FILE_MAX_AGE_SECONDS = 3600.0


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.db = Database(config)
        with self.db.server_cursor() as cur:  # the guard lets names qualify only this database and temp
            configure_catalogs_from(cur)
        self.users = UserDirectory(self.db)
        self.stage_catalog = StageCatalog(self.db)
        self.authorizer = self.stage_catalog.authorizer  # roles and grants (engine.catalog.authorizer)
        self.file_formats = FileFormats(self.db)
        self.load_history = LoadHistory(config.load_history_retention_days)
        self.query_log = QueryLog()  # running and recent statements (SHOW PROCESSLIST, KILL QUERY)
        self.stages = StageAccess(
            self.stage_catalog,
            self.file_formats,
            config.stage_root,
            config.storage_options,
            batch_rows=config.batch_rows,
            threads=config.threads,
            name_lock=lambda name: self.db.node_lock(
                f"stage-ddl:{name}", f"CREATE or DROP STAGE {name} waited too long"
            ),
        )
        self._credential_listeners: list[Callable[[str, bool], None]] = []
        self._meta_lock = threading.Lock()
        self._meta_cursor = self.db.cursor()
        self.users.on_drop(self._forget_user)
        self._stop = threading.Event()
        # The default storage root lies in our data dir, which DuckDB's lock keeps to one server:
        # at start-up no write into it can be running, so every temp file there is a leftover.
        self._sweep_temp_files(0.0 if config.storage_root is None else TEMP_FILE_MAX_AGE_SECONDS)
        self._gc_thread = threading.Thread(target=self._gc_loop, name="stage-gc", daemon=True)
        self._gc_thread.start()

    def open_session(self, user: str) -> Session:
        return Session(self, user)

    # -- users -------------------------------------------------------------------------
    def on_password_changed(self, name: str) -> None:
        for listener in self._credential_listeners:
            listener(name, False)

    def add_credentials_listener(self, listener: Callable[[str, bool], None]) -> None:
        """``listener(user, dropped)`` runs when a user's password changes or the user is dropped."""
        self._credential_listeners.append(listener)
        self.users.on_drop(lambda name: listener(name, True))

    def _forget_user(self, name: str) -> None:
        # The RFC's "cleanup while drop users": a re-created user starts with an empty stage.
        self.stages.drop_user_stage(name)
        self.stage_catalog.forget_user(name)
        self._hand_objects_to_root(name)

    def _hand_objects_to_root(self, name: str) -> None:
        """What a dropped user owned passes to root, so a re-created user of the same name starts
        with nothing (no stage, file format or table of the old one, nor its table stages)."""
        with self.db.security.transaction() as cur:  # named stages and file formats
            for table in ("stages", "file_formats"):
                cur.execute(f"UPDATE {table} SET creator = ? WHERE creator = ?", [ROOT_USER, name])
        with self.db.server_transaction() as cur:  # tables (and so their table stages)
            cur.execute(f"UPDATE {OWNERS_TABLE} SET owner = ? WHERE owner = ?", [ROOT_USER, name])

    def shared_login_failures(self) -> SharedLoginFailures | None:
        """Wrong-password records every node sees (a shared catalog), or None: the login throttle
        keeps its own in memory."""
        return SharedLoginFailures(self.db.security) if self.db.security.shared else None

    # -- stages ------------------------------------------------------------------------
    def enable_local_presign(self, base_url: str) -> Any:
        """Sign URLs served by the HTTP side at ``base_url``; returns the request handler to mount."""
        from stages.presign import SECRET_BYTES, PresignedFiles, PresignSigner

        security = self.db.security
        if security.shared:
            # One key for every node on the catalog: a URL one node signed opens on any of them
            # (behind a load balancer, or when the node that signed it is gone).
            fresh = secrets.token_hex(SECRET_BYTES)
            signer = PresignSigner(bytes.fromhex(security.shared_secret(PRESIGN_KEY_NAME, fresh)))
        else:
            signer = PresignSigner.load_or_create(self.config.data_dir / "presign.key")
        base = base_url.rstrip("/")

        def sign(method: str, key: str, expire: int, content_type: str | None, binding: str | None) -> str:
            return base + signer.sign(method, key, expire, content_type, binding=binding)

        self.stages.local_signer = sign
        return PresignedFiles(
            self.stages.storage, signer, binding_check=lambda binding: why_revoked(security, binding)
        )

    def presign_target(
        self, session: RunContext, ref: str, privilege: StagePrivilege
    ) -> tuple[ResolvedStage, str]:
        """Resolve ``ref`` for a presigned URL, with the URL's binding (engine.catalog.presign_binding).

        The privilege is checked again after the generations are read: a REVOKE or DROP in
        between either fails that check or moves a generation past the one the URL carries.
        """
        first = session.resolve_stage(ref, privilege)
        binding = stamp(self.db.security, scopes_for(session.user, first.stage, str(privilege)))
        return session.resolve_stage(ref, privilege), binding

    def _gc_loop(self) -> None:
        retention = self.config.user_stage_retention_days
        while not self._stop.wait(GC_INTERVAL_SECONDS):
            self._sweep_temp_files(TEMP_FILE_MAX_AGE_SECONDS)
            if retention is None:
                continue
            try:
                self.stages.vacuum_user_stages(retention)
            except Exception:  # a background loop is its own boundary: log, keep collecting
                log.exception("user-stage GC failed")

    def _sweep_temp_files(self, min_age_seconds: float) -> None:
        """Delete the hidden temp files of uploads and unloads killed mid-way (kill -9)."""
        try:
            removed = self.stages.storage.sweep_temp_files(min_age_seconds)
        except Exception:  # a background loop is its own boundary: log, try again next round
            log.exception("temp-file sweep of the stage storage failed")
            return
        if removed:
            log.info("removed %d temp file(s) left by interrupted stage writes", removed)

    @contextmanager
    def metadata_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for catalog metadata commands, apart from any session's busy cursor."""
        with self._meta_lock:
            yield self._meta_cursor

    def close(self) -> None:
        self._stop.set()
        self.db.close()
