"""Garbage protobuf bodies are bad input: a clear "malformed request", no internal error, no traceback."""

from __future__ import annotations

import logging

import pyarrow.flight as flight
import pytest
from google.protobuf import any_pb2

from flight import commands as cmd
from tests.conftest import ROOT_PASSWORD
from tests.flight.rawclient import RawClient

# Field 1 (query, a string) holding bytes that are not UTF-8.
_NOT_UTF8_QUERY = b"\x0a\x02\xff\xfe"
_GARBAGE = b"\xff\xff\xff\xff\x0f"


@pytest.fixture
def raw(server):
    client = RawClient(server.uri, "root", ROOT_PASSWORD)
    yield client
    client.close()


def _any(message_name: str, value: bytes) -> bytes:
    wrapper = any_pb2.Any(type_url=cmd.TYPE_URL_PREFIX + message_name, value=value)
    return wrapper.SerializeToString()


def _error_of(call, match: str) -> str:
    with pytest.raises(flight.FlightError, match=match) as err:
        call()
    return str(err.value)


_NOT_A_MESSAGE = "Malformed request: the body is not a valid Flight SQL message"


@pytest.mark.parametrize(
    ("action", "body", "expected"),
    [
        ("CancelFlightInfo", _GARBAGE, _NOT_A_MESSAGE),
        ("SetSessionOptions", _GARBAGE, _NOT_A_MESSAGE),
        (
            "CancelFlightInfo",
            b"\x0a\x03abc",
            "Malformed request: CancelFlightInfo carries no valid FlightInfo",
        ),
    ],
)
def test_malformed_action_bodies_are_refused_clearly(raw, caplog, action, body, expected):
    caplog.set_level(logging.ERROR, logger="stageflight")
    message = _error_of(lambda: raw.action(action, body), match=expected)
    assert "Internal error" not in message
    assert [r for r in caplog.records if r.exc_info] == []
    assert raw.query("SELECT 7 AS x").column("x").to_pylist() == [7]


@pytest.mark.parametrize(
    "command", [_any(f"{cmd.SQL_PACKAGE}.CommandStatementQuery", _NOT_UTF8_QUERY), _GARBAGE]
)
def test_malformed_commands_are_refused_clearly(raw, caplog, command):
    caplog.set_level(logging.ERROR, logger="stageflight")
    descriptor = flight.FlightDescriptor.for_command(command)
    message = _error_of(
        lambda: raw.client.get_flight_info(descriptor, raw.options),
        match="Unknown or malformed Flight SQL command",
    )
    assert "Internal error" not in message
    _error_of(
        lambda: raw.client.do_get(flight.Ticket(command), raw.options).read_all(),
        match="Unknown or malformed Flight SQL command",
    )
    assert [r for r in caplog.records if r.exc_info] == []
    assert raw.query("SELECT 8 AS x").column("x").to_pylist() == [8]
