"""A minimal Redis connection for the limiter's hot path: an asyncio Protocol speaking RESP
through hiredis (C parser and command packer).

Why not redis-py here: its per-command machinery costs more than a decision, and, more
importantly, its replies reach the caller one task wake-up after the bytes arrive. Here each
reply is handed to its callback inside `data_received`, and the asyncio loop processes socket
reads before due timers in the same iteration, so a reply that is already in the socket can
never lose the race against the limiter's 50 ms deadline merely because the event loop was
busy with other requests. Only a Redis that really answers late misses the deadline.

Replies come back in command order; callbacks are queued in that order. Error replies are
delivered as `hiredis.ReplyError` values, not raised.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis

from api.redis_url import RedisAddress

ReplyCallback = Callable[[Any], None]


class RedisConnectionError(ConnectionError):
    """The connection failed, closed, or refused the handshake."""


class RespProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._callbacks: deque[ReplyCallback] = deque()
        self._transport: asyncio.WriteTransport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio's classes.
        self._transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            reply = self._reader.gets()
            if reply is False:  # identity: a complete reply may well be 0
                return
            if self._callbacks:
                self._callbacks.popleft()(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = RedisConnectionError(f"Redis connection lost: {exc!r}")
        while self._callbacks:
            self._callbacks.popleft()(error)

    def send(self, command: tuple[Any, ...], callback: ReplyCallback) -> None:
        """Write one command; `callback` gets its reply (or a RedisConnectionError)."""
        if self.closed or self._transport is None:
            callback(RedisConnectionError("Redis connection is closed"))
            return
        self._callbacks.append(callback)
        self._transport.write(hiredis.pack_command(command))

    async def call(self, *command: Any) -> Any:
        """One command as a coroutine, for the rare non-batched calls (handshake, PING)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def resolve(reply: Any) -> None:
            if not future.done():
                future.set_result(reply)

        self.send(command, resolve)
        reply = await future
        if isinstance(reply, (hiredis.ReplyError, RedisConnectionError)):
            raise RedisConnectionError(str(reply))
        return reply

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


async def open_connection(address: RedisAddress) -> RespProtocol:
    """Connect, authenticate and select the database."""
    loop = asyncio.get_running_loop()
    if address.unix_path is not None:
        _, protocol = await loop.create_unix_connection(RespProtocol, address.unix_path)
    else:
        assert address.host is not None, "a TCP address always has a host"
        context = ssl.create_default_context() if address.tls else None
        _, protocol = await loop.create_connection(
            RespProtocol, address.host, address.port, ssl=context
        )
    try:
        if address.password is not None:
            credentials = (address.username, address.password) if address.username else ()
            await protocol.call("AUTH", *(credentials or (address.password,)))
        if address.db:
            await protocol.call("SELECT", address.db)
    except BaseException:
        protocol.close()
        raise
    return protocol
