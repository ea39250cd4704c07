"""A raw pyarrow.flight client speaking Flight SQL messages directly (for non-dbapi paths)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.flight as flight

from flight import commands as cmd


class RawClient:
    def __init__(self, uri: str, user: str, password: str, **kwargs: Any) -> None:
        self.client = flight.FlightClient(uri, **kwargs)
        header = self.client.authenticate_basic_token(user.encode(), password.encode())
        self.options = flight.FlightCallOptions(headers=[header])
        self.token = header[1].decode()

    def info(self, message: Any) -> flight.FlightInfo:
        descriptor = flight.FlightDescriptor.for_command(cmd.pack(message))
        return self.client.get_flight_info(descriptor, self.options)

    def fetch(self, info: flight.FlightInfo) -> pa.Table:
        return self.client.do_get(info.endpoints[0].ticket, self.options).read_all()

    def query(self, sql: str) -> pa.Table:
        return self.fetch(self.info(cmd.CommandStatementQuery(query=sql)))

    def update(self, sql: str) -> int:
        descriptor = flight.FlightDescriptor.for_command(cmd.pack(cmd.CommandStatementUpdate(query=sql)))
        writer, reader = self.client.do_put(descriptor, pa.schema([]), self.options)
        writer.done_writing()
        buf = reader.read()
        writer.close()
        return int(cmd.DoPutUpdateResult.FromString(buf.to_pybytes()).record_count)

    def action(self, name: str, body: bytes) -> list[bytes]:
        return [r.body.to_pybytes() for r in self.client.do_action(flight.Action(name, body), self.options)]

    def prepare(self, sql: str) -> Any:
        [raw] = self.action(
            "CreatePreparedStatement", cmd.pack(cmd.ActionCreatePreparedStatementRequest(query=sql))
        )
        return cmd.unpack(raw)

    def close(self) -> None:
        self.client.close()
