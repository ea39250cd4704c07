"""Flight SQL protobuf messages, loaded from a committed descriptor set into a private pool.

A private pool avoids clashes with other packages that register the same Flight SQL names
in protobuf's default pool, and needs no generated code (no protoc version gate).
Regenerate ``proto/flight_protocol.binpb`` after editing a ``.proto`` (see tests/flight/test_commands.py).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

SQL_PACKAGE = "arrow.flight.protocol.sql"
FLIGHT_PACKAGE = "arrow.flight.protocol"
TYPE_URL_PREFIX = "type.googleapis.com/"


def _load_pool() -> descriptor_pool.DescriptorPool:
    data = resources.files("flight").joinpath("proto/flight_protocol.binpb").read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    pool = descriptor_pool.DescriptorPool()
    for file_proto in files.file:
        pool.Add(file_proto)
    return pool


_POOL = _load_pool()


def message_class(full_name: str) -> type[Message]:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


def _sql(name: str) -> Any:
    return message_class(f"{SQL_PACKAGE}.{name}")


def _core(name: str) -> Any:
    return message_class(f"{FLIGHT_PACKAGE}.{name}")


CommandStatementQuery = _sql("CommandStatementQuery")
TicketStatementQuery = _sql("TicketStatementQuery")
CommandStatementUpdate = _sql("CommandStatementUpdate")
DoPutUpdateResult = _sql("DoPutUpdateResult")
ActionCreatePreparedStatementRequest = _sql("ActionCreatePreparedStatementRequest")
ActionCreatePreparedStatementResult = _sql("ActionCreatePreparedStatementResult")
ActionClosePreparedStatementRequest = _sql("ActionClosePreparedStatementRequest")
CommandPreparedStatementQuery = _sql("CommandPreparedStatementQuery")
CommandPreparedStatementUpdate = _sql("CommandPreparedStatementUpdate")
DoPutPreparedStatementResult = _sql("DoPutPreparedStatementResult")
CommandStatementIngest = _sql("CommandStatementIngest")
CommandGetSqlInfo = _sql("CommandGetSqlInfo")
CommandGetCatalogs = _sql("CommandGetCatalogs")
CommandGetDbSchemas = _sql("CommandGetDbSchemas")
CommandGetTables = _sql("CommandGetTables")
CommandGetTableTypes = _sql("CommandGetTableTypes")
CommandGetPrimaryKeys = _sql("CommandGetPrimaryKeys")
CommandGetExportedKeys = _sql("CommandGetExportedKeys")
CommandGetImportedKeys = _sql("CommandGetImportedKeys")
CommandGetCrossReference = _sql("CommandGetCrossReference")
CommandGetXdbcTypeInfo = _sql("CommandGetXdbcTypeInfo")
ActionBeginTransactionRequest = _sql("ActionBeginTransactionRequest")
ActionBeginTransactionResult = _sql("ActionBeginTransactionResult")
ActionEndTransactionRequest = _sql("ActionEndTransactionRequest")
ActionBeginSavepointRequest = _sql("ActionBeginSavepointRequest")
ActionBeginSavepointResult = _sql("ActionBeginSavepointResult")
ActionEndSavepointRequest = _sql("ActionEndSavepointRequest")
ActionCancelQueryRequest = _sql("ActionCancelQueryRequest")
ActionCancelQueryResult = _sql("ActionCancelQueryResult")

CancelFlightInfoRequest = _core("CancelFlightInfoRequest")
CancelFlightInfoResult = _core("CancelFlightInfoResult")
SessionOptionValue = _core("SessionOptionValue")
SetSessionOptionsRequest = _core("SetSessionOptionsRequest")
SetSessionOptionsResult = _core("SetSessionOptionsResult")
GetSessionOptionsRequest = _core("GetSessionOptionsRequest")
GetSessionOptionsResult = _core("GetSessionOptionsResult")
CloseSessionRequest = _core("CloseSessionRequest")
CloseSessionResult = _core("CloseSessionResult")

# Enum values (named constants keep call sites readable).
INGEST_NOT_EXIST_CREATE = 1
INGEST_NOT_EXIST_FAIL = 2
INGEST_EXISTS_FAIL = 1
INGEST_EXISTS_APPEND = 2
INGEST_EXISTS_REPLACE = 3
END_TRANSACTION_COMMIT = 1
END_TRANSACTION_ROLLBACK = 2
END_SAVEPOINT_RELEASE = 1
END_SAVEPOINT_ROLLBACK = 2
CANCEL_STATUS_CANCELLED = 1
CANCEL_STATUS_NOT_CANCELLABLE = 3
CLOSE_SESSION_CLOSED = 1
SESSION_OPTION_INVALID_NAME = 1
SESSION_OPTION_INVALID_VALUE = 2


class MalformedMessage(ValueError):
    """A request body that does not decode as the message it must be."""


def parse(cls: Any, data: bytes) -> Any:
    """Decode a bare (not Any-wrapped) message, e.g. an action body."""
    try:
        return cls.FromString(data)
    except DecodeError:
        raise MalformedMessage(f"Malformed request: the body is not a valid {cls.DESCRIPTOR.name}") from None


def pack(msg: Message) -> bytes:
    """Serialize ``msg`` wrapped in ``google.protobuf.Any`` (how Flight SQL commands travel)."""
    wrapper = any_pb2.Any()
    wrapper.type_url = TYPE_URL_PREFIX + msg.DESCRIPTOR.full_name
    wrapper.value = msg.SerializeToString()
    return wrapper.SerializeToString()


def unpack(data: bytes) -> Message | None:
    """Decode Any-wrapped bytes into the matching message; None when the type is unknown."""
    wrapper = any_pb2.Any()
    try:
        wrapper.ParseFromString(data)
    except DecodeError:
        return None
    # Dispatch on the name after the last '/', never on the whole URL.
    name = wrapper.type_url.rsplit("/", 1)[-1]
    try:
        cls = message_class(name)
    except KeyError:
        return None
    msg = cls()
    try:
        msg.ParseFromString(wrapper.value)
    except DecodeError:
        return None  # e.g. a string field that is not UTF-8
    return msg


def type_name(msg: Message) -> str:
    return str(msg.DESCRIPTOR.name)
