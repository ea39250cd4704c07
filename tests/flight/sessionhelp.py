"""Helpers for the session, token and result-limit tests: users and raw clients on a private server."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from flight import commands as cmd
from flight.app import RunningServer
from tests.conftest import ROOT_PASSWORD, connect
from tests.flight.rawclient import RawClient


def create_user(running: RunningServer, name: str) -> str:
    """Create ``name`` on ``running``; returns its password."""
    password = f"{name}-pw-secret"
    with connect(running) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER {name} IDENTIFIED BY '{password}'")
    return password


def open_session(running: RunningServer, user: str = "root", password: str = ROOT_PASSWORD) -> RawClient:
    """A client whose session is open: sessions open with the first call, not at the handshake."""
    raw = RawClient(running.uri, user, password)
    try:
        raw.query("SELECT 1 AS one")
    except Exception:
        raw.close()
        raise
    return raw


def begin(raw: RawClient) -> bytes:
    [body] = raw.action("BeginTransaction", cmd.pack(cmd.ActionBeginTransactionRequest()))
    result: Any = cmd.unpack(body)
    return bytes(result.transaction_id)


def commit(raw: RawClient, transaction_id: bytes) -> None:
    request = cmd.ActionEndTransactionRequest(
        transaction_id=transaction_id, action=cmd.END_TRANSACTION_COMMIT
    )
    raw.action("EndTransaction", cmd.pack(request))


def update_in(raw: RawClient, sql: str, transaction_id: bytes) -> int:
    message = cmd.CommandStatementUpdate(query=sql, transaction_id=transaction_id)
    descriptor = flight.FlightDescriptor.for_command(cmd.pack(message))
    writer, reader = raw.client.do_put(descriptor, pa.schema([]), raw.options)
    writer.done_writing()
    buf = reader.read()
    writer.close()
    return int(cmd.DoPutUpdateResult.FromString(buf.to_pybytes()).record_count)
