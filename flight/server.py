"""The Flight SQL server: decodes commands, runs them through the engine, streams Arrow back."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.flight as flight
from google.protobuf.message import Message

from engine import (
    Engine,
    EngineError,
    Prepared,
    Result,
    StatementRejected,
    ingest,
    parameter_rows,
)
from flight import commands as cmd
from flight.auth import (
    MIDDLEWARE_KEY,
    AuthMiddlewareFactory,
    CallAuth,
    PassThroughAuthHandler,
    SharedTokens,
    TokenStore,
)
from flight.cancel import CancelWatcher
from flight.errors import ClientError, flight_errors, guarded
from flight.ingest_call import ingest_arguments
from flight.message_size import fitted, sliced
from flight.metadata_calls import metadata_schema, metadata_table
from flight.metrics import ServerMetrics
from flight.result_schema import described, shaped
from flight.sessions import DeferredQuery, FlightSession, PreparedStatement, SessionLimits, SessionRegistry
from flight.throttle import LoginThrottle

log = logging.getLogger("stageflight")
T = TypeVar("T")

_ACTIONS = [
    ("CreatePreparedStatement", "Prepare a SQL statement"),
    ("ClosePreparedStatement", "Close a prepared statement"),
    ("BeginTransaction", "Begin a transaction"),
    ("EndTransaction", "Commit or roll back a transaction"),
    ("CancelFlightInfo", "Cancel a result that has not been fetched"),
    ("CloseSession", "Close the session, rolling back an open transaction"),
    ("GetSessionOptions", "Current catalog and schema"),
    ("SetSessionOptions", "Set the current catalog and schema"),
]


class StageflightServer(flight.FlightServerBase):
    def __init__(
        self,
        location: str,
        engine: Engine,
        *,
        token_ttl: int = 3600,
        session_idle: int = 3600,
        result_ttl: int = 300,
        max_sessions: int = 512,
        tls_certificates: list[flight.CertKeyPair] | None = None,
        limits: SessionLimits | None = None,
        token_max_lifetime: int | None = None,
        login_throttle: LoginThrottle | None = None,
    ) -> None:
        self.engine = engine
        self.tokens = TokenStore(token_ttl, token_max_lifetime)
        key = engine.users.token_secret()  # a catalog shared with other nodes (--catalog): None here
        if key is not None:  # tokens are signed with the catalog's key, so every node verifies them
            self.tokens.share(SharedTokens(key, engine.users.token_generation))
        limits = limits or SessionLimits(max_sessions, idle_seconds=session_idle, result_ttl=result_ttl)
        self.registry = SessionRegistry(engine, limits=limits)
        self.tokens.activity = self.registry.activity  # expiry never cuts a running call short
        engine.add_credentials_listener(self._revoke_user)
        self.metrics = ServerMetrics(self.registry.count, self.registry.open_streams, engine.metadata_cursor)
        auth = AuthMiddlewareFactory(self.tokens, engine.users.authenticate, login_throttle)
        auth.on_failed_login = self.metrics.failed_logins.inc
        super().__init__(
            location,
            auth_handler=PassThroughAuthHandler(),
            middleware={MIDDLEWARE_KEY: auth},
            tls_certificates=tls_certificates or [],
        )
        self._calling = threading.local()
        self._cancels = CancelWatcher()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="reaper", daemon=True)
        self._reaper.start()

    # -- housekeeping -------------------------------------------------------------------
    def _reap_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                for key in self.tokens.purge_expired():
                    self.registry.close(key)
                self.registry.reap()
            except Exception:  # a background loop is its own boundary: log, keep reaping
                log.exception("reaper failed")

    def _revoke_user(self, user: str, dropped: bool) -> None:
        # A password change logs out the user's other connections, not the one that changed it.
        keep = None if dropped else getattr(self._calling, "token_key", None)
        for key in self.tokens.revoke_user(user, keep=keep):
            self.registry.close(key)

    def shutdown(self) -> None:
        self._stop.set()
        self._cancels.stop()
        self.registry.close_all()
        super().shutdown()

    # -- helpers ------------------------------------------------------------------------
    def _session(self, context: flight.ServerCallContext) -> FlightSession:
        auth: CallAuth = context.get_middleware(MIDDLEWARE_KEY)
        self._calling.token_key = TokenStore.key(auth.token)
        return self.registry.get_or_open(self._calling.token_key, auth.user)

    def _user(self, context: flight.ServerCallContext) -> str:
        auth: CallAuth = context.get_middleware(MIDDLEWARE_KEY)
        return auth.user

    @staticmethod
    def _command(data: bytes) -> Message:
        message = cmd.unpack(data)
        if message is None:
            raise ClientError("Unknown or malformed Flight SQL command")
        return message

    def _info_for_result(
        self, fs: FlightSession, descriptor: flight.FlightDescriptor, result: Result
    ) -> flight.FlightInfo:
        result = shaped(result)  # the FlightInfo and DoGet's stream carry one schema
        handle = self.registry.park(fs.user, result, fs)
        ticket = flight.Ticket(cmd.pack(cmd.TicketStatementQuery(statement_handle=handle)))
        total = result.table.num_rows if result.stream is None and result.table is not None else -1
        return flight.FlightInfo(result.schema, descriptor, [flight.FlightEndpoint(ticket, [])], total, -1)

    def _info_for_deferred(
        self, fs: FlightSession, descriptor: flight.FlightDescriptor, prepared: Prepared
    ) -> flight.FlightInfo:
        schema = described(prepared.dataset_schema or pa.schema([]))
        handle = self.registry.park(fs.user, DeferredQuery(fs, prepared), fs)
        ticket = flight.Ticket(cmd.pack(cmd.TicketStatementQuery(statement_handle=handle)))
        return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def _run_deferred(self, context: flight.ServerCallContext, query: DeferredQuery) -> Result:
        """Run a deferred query in its DoGet, up to its first batches: a cancelled DoGet stops it."""
        fs, prepared = query.fs, query.prepared
        run = fs.engine_session.run_prepared
        result = shaped(self._run(context, fs, lambda: run(prepared), sql=prepared.sql))
        if result.stream is not None:
            self.registry.track_stream(fs, result)
        return result

    def _run(
        self,
        context: flight.ServerCallContext,
        fs: FlightSession,
        fn: Callable[[], T],
        *,
        work: bool = True,
        sql: str | None = None,
    ) -> T:
        """Run session work as one call: counted as busy, interrupted when the client cancels;
        with ``sql``, counted and timed as one statement (/metrics)."""
        with self.registry.call(fs, work=work), self._cancels.watch(context, fs.engine_session.interrupt):
            with self.metrics.statement(sql):
                return self.metrics.tally(sql, fn())

    # -- GetFlightInfo --------------------------------------------------------------------
    def get_flight_info(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.FlightInfo:
        with flight_errors():
            message = self._command(descriptor.command)
            name = cmd.type_name(message)
            if name == "CommandStatementQuery":
                fs = self._session(context)
                fs.check_transaction(message.transaction_id or None)
                query = message.query
                result = self._run(context, fs, lambda: fs.engine_session.execute(query), sql=query)
                return self._info_for_result(fs, descriptor, result)
            if name == "CommandPreparedStatementQuery":
                fs = self._session(context)
                stmt = fs.statement(message.prepared_statement_handle)
                if fs.engine_session.deferrable(stmt.prepared, stmt.params):
                    return self._info_for_deferred(fs, descriptor, stmt.prepared)
                result = self._run(
                    context,
                    fs,
                    lambda: fs.engine_session.run_prepared_rows(stmt.prepared, stmt.params),
                    sql=stmt.prepared.sql,
                )
                return self._info_for_result(fs, descriptor, result)
            schema = metadata_schema(message)
            ticket = flight.Ticket(cmd.pack(message))
            return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def get_schema(
        self, context: flight.ServerCallContext, descriptor: flight.FlightDescriptor
    ) -> flight.SchemaResult:
        with flight_errors():
            message = self._command(descriptor.command)
            name = cmd.type_name(message)
            if name == "CommandStatementQuery":
                fs = self._session(context)
                session = fs.engine_session
                prepared = self._run(context, fs, lambda: session.prepare(message.query), work=False)
                session.drop_early(prepared)  # only the schema was asked for
                return flight.SchemaResult(described(prepared.dataset_schema or pa.schema([])))
            if name == "CommandPreparedStatementQuery":
                stmt = self._session(context).statement(message.prepared_statement_handle)
                return flight.SchemaResult(described(stmt.prepared.dataset_schema or pa.schema([])))
            return flight.SchemaResult(metadata_schema(message))

    # -- metadata ---------------------------------------------------------------------
    # -- DoGet ----------------------------------------------------------------------------
    def do_get(self, context: flight.ServerCallContext, ticket: flight.Ticket) -> flight.FlightDataStream:
        with flight_errors():
            message = self._command(ticket.ticket)
            if cmd.type_name(message) == "TicketStatementQuery":
                result = self.registry.redeem(message.statement_handle, self._user(context))
                if isinstance(result, DeferredQuery):
                    result = self._run_deferred(context, result)
                if result.stream is None and result.table is not None:
                    result.close()
                    return flight.RecordBatchStream(fitted(result.table))
                return flight.GeneratorStream(result.schema, guarded(sliced(result.batches())))
            return flight.RecordBatchStream(metadata_table(self.engine, message, self._session(context)))

    # -- DoPut ----------------------------------------------------------------------------
    def do_put(
        self,
        context: flight.ServerCallContext,
        descriptor: flight.FlightDescriptor,
        reader: flight.MetadataRecordBatchReader,
        writer: flight.FlightMetadataWriter,
    ) -> None:
        with flight_errors():
            message: Any = self._command(descriptor.command)
            name = cmd.type_name(message)
            fs = self._session(context)
            session = fs.engine_session
            if name == "CommandStatementUpdate":
                # No schema and no data arrive here: never touch the reader.
                fs.check_transaction(message.transaction_id or None)
                result = self._run(context, fs, lambda: session.execute(message.query), sql=message.query)
                self._write_count(writer, result)
            elif name == "CommandPreparedStatementQuery":
                stmt = fs.statement(message.prepared_statement_handle)
                stmt.params = parameter_rows(_read_params(reader))
                writer.write(
                    pa.py_buffer(
                        cmd.DoPutPreparedStatementResult(
                            prepared_statement_handle=message.prepared_statement_handle
                        ).SerializeToString()
                    )
                )
            elif name == "CommandPreparedStatementUpdate":
                stmt = fs.statement(message.prepared_statement_handle)
                self._write_count(writer, self._prepared_update(context, fs, stmt, _read_params(reader)))
            elif name == "CommandStatementIngest":
                count = self._ingest(context, fs, message, reader)
                writer.write(pa.py_buffer(cmd.DoPutUpdateResult(record_count=count).SerializeToString()))
            else:
                raise ClientError(f"Unsupported DoPut command: {name}")

    @staticmethod
    def _write_count(writer: flight.FlightMetadataWriter, result: Result) -> None:
        # DDL, BEGIN, COMMIT, SET have no row count. 0, not the "unknown" -1 the spec allows: the
        # JDBC driver (Avatica) reads -1 as "this was a query" and runs the statement again.
        count = result.rowcount if result.is_update and result.rowcount >= 0 else 0
        result.close()
        writer.write(pa.py_buffer(cmd.DoPutUpdateResult(record_count=count).SerializeToString()))

    def _prepared_update(
        self, context: flight.ServerCallContext, fs: FlightSession, stmt: PreparedStatement, params: pa.Table
    ) -> Result:
        session = fs.engine_session
        if params.num_columns and params.num_rows:
            batches = params.to_batches()
            count = self._run(
                context,
                fs,
                lambda: Result.update(session.execute_many(stmt.prepared, batches)),
                sql=stmt.prepared.sql,
            ).rowcount
            return Result.update(count)
        bound = stmt.params[0] if stmt.params else None
        return self._run(
            context, fs, lambda: session.run_prepared(stmt.prepared, bound), sql=stmt.prepared.sql
        )

    def _ingest(
        self,
        context: flight.ServerCallContext,
        fs: FlightSession,
        message: Any,
        reader: flight.MetadataRecordBatchReader,
    ) -> int:
        target, if_missing, if_exists = ingest_arguments(message)
        data = self.metrics.counted_ingest(reader.to_reader())
        with self.registry.call(fs), self._cancels.watch(context, fs.engine_session.interrupt):
            return ingest(fs.engine_session, target, data, if_missing, if_exists)

    # -- actions --------------------------------------------------------------------------
    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        return _ACTIONS

    def do_action(self, context: flight.ServerCallContext, action: flight.Action) -> Iterator[flight.Result]:
        with flight_errors():
            handler = getattr(self, "_action_" + action.type, None)
            if handler is None:
                raise ClientError(f"Unsupported action: {action.type}")
            body = action.body.to_pybytes() if action.body is not None else b""
            results: list[bytes] = handler(context, body)
        return iter([flight.Result(pa.py_buffer(r)) for r in results])

    def _action_CreatePreparedStatement(self, context: flight.ServerCallContext, body: bytes) -> list[bytes]:
        request: Any = self._command(body)
        fs = self._session(context)
        fs.check_transaction(request.transaction_id or None)
        # A query may run here already (Session.prepare): it is cancellable like any execution.
        with self.metrics.statement(request.query, failures_only=True):  # executions count the rest
            prepared = self._run(context, fs, lambda: fs.engine_session.prepare(request.query), work=False)
        handle = secrets.token_bytes(16)
        fs.prepared[handle] = PreparedStatement(prepared)
        result = cmd.ActionCreatePreparedStatementResult(
            prepared_statement_handle=handle, is_update=prepared.is_update
        )
        if prepared.dataset_schema is not None:
            result.dataset_schema = described(prepared.dataset_schema).serialize().to_pybytes()
        if prepared.param_count:
            # Typed (engine/sql/parameter_types.py): JDBC cannot bind into a null vector. Batches
            # of other types are accepted too: each value is bound as the Python value it holds.
            types = prepared.param_types or [pa.utf8()] * prepared.param_count
            fields = [pa.field(str(i), t) for i, t in enumerate(types)]
            result.parameter_schema = pa.schema(fields).serialize().to_pybytes()
        return [cmd.pack(result)]

    def _action_ClosePreparedStatement(self, context: flight.ServerCallContext, body: bytes) -> list[bytes]:
        request: Any = self._command(body)
        fs = self._session(context)
        closed = fs.prepared.pop(request.prepared_statement_handle, None)
        if closed is not None:
            fs.engine_session.drop_early(closed.prepared)
        return []

    def _action_BeginTransaction(self, context: flight.ServerCallContext, body: bytes) -> list[bytes]:
        fs = self._session(context)
        if fs.transaction_id is not None and fs.engine_session.in_transaction:
            raise ClientError("A transaction is already open in this session")
        fs.engine_session.begin()
        fs.transaction_id = secrets.token_bytes(16)
        return [cmd.pack(cmd.ActionBeginTransactionResult(transaction_id=fs.transaction_id))]

    def _action_EndTransaction(self, context: flight.ServerCallContext, body: bytes) -> list[bytes]:
        request: Any = self._command(body)
        fs = self._session(context)
        if not request.transaction_id or request.transaction_id != fs.transaction_id:
            raise ClientError("Unknown transaction id for this session")
        fs.transaction_id = None
        if request.action == cmd.END_TRANSACTION_COMMIT:
            fs.engine_session.commit()
        elif request.action == cmd.END_TRANSACTION_ROLLBACK:
            fs.engine_session.rollback()
        else:
            raise ClientError("EndTransaction needs COMMIT or ROLLBACK")
        return []

    def _action_BeginSavepoint(self, context: flight.ServerCallContext, body: bytes) -> list[bytes]:
        raise StatementRejected("Savepoints are not supported (DuckDB has no savepoints)")

    _action_EndSavepoint = _action_BeginSavepoint

    def _action_CancelFlightInfo(self, context: flight.ServerCallContext, body: bytes) -> list[bytes]:
        request: Any = cmd.parse(cmd.CancelFlightInfoRequest, body)
        status = cmd.CANCEL_STATUS_NOT_CANCELLABLE
        try:
            info = flight.FlightInfo.deserialize(request.info)
        except (pa.ArrowException, OSError, ValueError):
            raise ClientError("Malformed request: CancelFlightInfo carries no valid FlightInfo") from None
        for endpoint in info.endpoints:
            ticket = cmd.unpack(endpoint.ticket.ticket)
            if ticket is not None and cmd.type_name(ticket) == "TicketStatementQuery":
                if self.registry.drop_result(ticket.statement_handle):
                    status = cmd.CANCEL_STATUS_CANCELLED
        return [cmd.CancelFlightInfoResult(status=status).SerializeToString()]

    def _action_CloseSession(self, context: flight.ServerCallContext, body: bytes) -> list[bytes]:
        auth: CallAuth = context.get_middleware(MIDDLEWARE_KEY)
        self.registry.close(TokenStore.key(auth.token))
        self.tokens.revoke(auth.token)
        return [cmd.CloseSessionResult(status=cmd.CLOSE_SESSION_CLOSED).SerializeToString()]

    def _action_GetSessionOptions(self, context: flight.ServerCallContext, body: bytes) -> list[bytes]:
        catalog, schema = self._session(context).engine_session.current_catalog_and_schema()
        result: Any = cmd.GetSessionOptionsResult()
        result.session_options["catalog"].string_value = catalog
        result.session_options["schema"].string_value = schema
        return [result.SerializeToString()]

    def _action_SetSessionOptions(self, context: flight.ServerCallContext, body: bytes) -> list[bytes]:
        request: Any = cmd.parse(cmd.SetSessionOptionsRequest, body)
        result: Any = cmd.SetSessionOptionsResult()
        wanted: dict[str, str] = {}
        for key, value in request.session_options.items():
            if key not in ("catalog", "schema"):
                result.errors[key].value = cmd.SESSION_OPTION_INVALID_NAME
            elif value.WhichOneof("option_value") != "string_value":
                result.errors[key].value = cmd.SESSION_OPTION_INVALID_VALUE
            else:
                wanted[key] = value.string_value
        if wanted:
            try:
                self._session(context).engine_session.use(wanted.get("catalog"), wanted.get("schema"))
            except EngineError:
                for key in wanted:
                    result.errors[key].value = cmd.SESSION_OPTION_INVALID_VALUE
        return [result.SerializeToString()]


def _read_params(reader: flight.MetadataRecordBatchReader) -> pa.Table:
    try:
        return reader.read_all()
    except (OSError, pa.ArrowInvalid):
        return pa.table({})
