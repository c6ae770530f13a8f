"""How many PostgreSQL round trips a request costs, counted at the wire.

The app under test connects to PostgreSQL through `PostgresWire`, a proxy that reads what the
client sends. A client waits for the server once per simple Query message ('Q') and once per
Sync ('S', which ends an extended-protocol exchange of Parse/Bind/Execute): each is one round
trip. That counts what SQLAlchemy's statement events cannot see: psycopg sends BEGIN as a
Query of its own before the first statement of a transaction, and COMMIT or ROLLBACK at its
end.

Some round trips depend on the pooled connection's history rather than on the request: opening
a connection (startup and authentication), and psycopg's statement cache, which prepares a
statement the fifth time a connection runs it (a Parse and Sync of its own) and, after a
ROLLBACK, deallocates everything it prepared (DEALLOCATE ALL). They are listed, not counted, so
that a count does not depend on which pooled connection served the request or what it ran
before.

    with wire.measure() as trips:
        response = await client.get("/v1/payments", headers=headers)
    trips.expect(2)

`expect` fails with every round trip and its SQL. TLS is refused at the proxy (as a server
without TLS would), so the messages stay readable whatever the URL's sslmode prefers.

`statements_sent` records what the app's engine sends, with parameters, for tests that look at
the statements themselves rather than count round trips.
"""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import make_url

from tests.api.tcp_proxy import TcpProxy

# The codes a client sends instead of a protocol version to ask for an encrypted session.
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102

Kind = Literal["request", "connection"]


@dataclass(frozen=True)
class RoundTrip:
    # "request": a statement or transaction control of the request; "connection": a cost of
    # the pooled connection's state (startup, authentication, psycopg's statement cache).
    kind: Kind
    sql: str


@dataclass(repr=False)
class RoundTrips:
    """The round trips one measured block made, in the order the client sent them."""

    trips: list[RoundTrip] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(trip.kind == "request" for trip in self.trips)

    @property
    def statements(self) -> list[str]:
        return [trip.sql for trip in self.trips if trip.kind == "request"]

    @property
    def connections_opened(self) -> int:
        return sum(trip.sql == "connect" for trip in self.trips)

    def expect(self, count: int) -> None:
        """Fail, listing every round trip with its SQL, unless the block made `count`."""
        if self.count != count:
            raise AssertionError(f"expected {count} round trips, counted {self}")

    def __repr__(self) -> str:
        lines = [f"{self.count} round trips:"]
        number = 0
        for trip in self.trips:
            if trip.kind == "request":
                number += 1
                lines.append(f"  {number}. {trip.sql}")
            else:
                lines.append(f"  -  {trip.sql} (the connection's upkeep, not counted)")
        return "\n".join(lines)


def _text(raw: bytes) -> str:
    return re.sub(r"\s+", " ", raw.decode("utf-8", "replace")).strip()


class _FrontendStream:
    """One connection's client-to-server messages, turned into round trips."""

    def __init__(self, record: Callable[[RoundTrip], None], startup_bytes_left: int) -> None:
        self._record = record
        self._skip = startup_bytes_left
        self._buffer = bytearray()
        self._statements: dict[bytes, str] = {}  # prepared statement name ("" unnamed) -> SQL
        self._portals: dict[bytes, str] = {}
        self._executed: list[str] = []
        self._maintenance: list[str] = []  # what a Sync without an Execute did

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if self._skip:
            skipped = min(self._skip, len(self._buffer))
            del self._buffer[:skipped]
            self._skip -= skipped
        while len(self._buffer) >= 5:
            kind = bytes(self._buffer[:1])
            (length,) = struct.unpack("!i", self._buffer[1:5])
            if len(self._buffer) < 1 + length:
                return
            body = bytes(self._buffer[5 : 1 + length])
            del self._buffer[: 1 + length]
            self._message(kind, body)

    def _message(self, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            sql = _text(body.rstrip(b"\0"))
            upkeep = sql.startswith("DEALLOCATE")
            self._record(RoundTrip("connection" if upkeep else "request", sql))
        elif kind == b"P":
            name, query, _ = body.split(b"\0", 2)
            self._statements[name] = _text(query)
            if name:
                self._maintenance.append(f"prepare {_text(query)}")
        elif kind == b"B":
            portal, name, _ = body.split(b"\0", 2)
            self._portals[portal] = self._statements.get(name, f"<statement {name!r}>")
        elif kind == b"E":
            portal = body.split(b"\0", 1)[0]
            self._executed.append(self._portals.get(portal, f"<portal {portal!r}>"))
        elif kind == b"C":
            self._maintenance.append("close a prepared statement")
        elif kind == b"S":
            if self._executed:
                self._record(RoundTrip("request", "; ".join(self._executed)))
            else:
                done = "; ".join(self._maintenance) or "sync"
                self._record(RoundTrip("connection", done))
            self._executed.clear()
            self._maintenance.clear()
        elif kind == b"p":
            self._record(RoundTrip("connection", "authentication"))


class PostgresWire(TcpProxy):
    """A proxy in front of PostgreSQL that counts the round trips passing through it."""

    def __init__(self, database_url: str) -> None:
        target = make_url(database_url)
        super().__init__(target.host or "127.0.0.1", target.port or 5432)
        self._target_url = target
        self._sinks: list[RoundTrips] = []

    @property
    def url(self) -> str:
        """The database URL an app uses to connect through this proxy."""
        proxied = self._target_url.set(host="127.0.0.1", port=self.port)
        return proxied.render_as_string(hide_password=False)

    @contextmanager
    def measure(self) -> Iterator[RoundTrips]:
        """Round trips made while the block runs (by every connection through the proxy).

        Every round trip needs the proxy to pass the server's answer back, so by the time an
        awaited request has finished, all of its round trips are recorded."""
        trips = RoundTrips()
        self._sinks.append(trips)
        try:
            yield trips
        finally:
            self._sinks.remove(trips)

    def _record(self, trip: RoundTrip) -> None:
        for sink in self._sinks:
            sink.trips.append(trip)

    async def _forward_client(
        self,
        reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
        client: asyncio.StreamWriter,
    ) -> None:
        try:
            while True:
                head = await reader.readexactly(8)
                length, code = struct.unpack("!ii", head)
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                    break
                client.write(b"N")  # "no encryption": the client goes on in plain text
                await client.drain()
        except (OSError, asyncio.IncompleteReadError):
            client.transport.abort()
            upstream.transport.abort()
            return
        if code != _CANCEL_REQUEST:
            self._record(RoundTrip("connection", "connect"))
        upstream.write(head)
        stream = _FrontendStream(self._record, startup_bytes_left=length - len(head))
        await self._pipe(reader, upstream, observe=stream.feed)


@dataclass(frozen=True)
class SentStatement:
    sql: str
    parameters: Any


@contextmanager
def statements_sent(app: FastAPI) -> Iterator[list[SentStatement]]:
    """Every statement the app's engine sends while the block runs, with its parameters."""
    sent: list[SentStatement] = []

    def record(*args: Any) -> None:
        sent.append(SentStatement(args[2], args[3]))

    engine = app.state.database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)
