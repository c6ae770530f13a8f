"""Redis backend: one atomic Lua script, concurrent decisions coalesced into one round trip.

Requests needing a decision while a round trip is in flight queue up; when its reply comes
back, all of them go to Redis together as ONE `EVALSHA` over their keys. The script handles
the keys one after another inside a single atomic execution, so every decision is atomic (no
read-then-write race between API instances) and a busy worker pays one round trip and one
command for dozens of requests. The script is loaded at start-up; after a Redis restart the
NOSCRIPT reply is answered by sending the same batch once as `EVAL`, which loads it again.

Whenever Redis errors, or a reply has not arrived 50 ms (`timeout`) after its command was
sent, the decisions of that batch are made by the in-process backend instead and counted in
`ratelimit_backend_errors_total`; no request fails because of Redis. After a failure Redis is
left alone for `cooldown` seconds (decisions stay in-process, still counted), then tried again,
so the limiter recovers on its own when Redis is back. Replies are read in the protocol
callback (resp.py), so a busy event loop does not turn a fast reply into a timeout.

Keys of one batch may hash to different slots: this needs a standalone (non-cluster) Redis,
which is what the deployment provisions.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hiredis

from api.observability.metrics import ratelimit_backend_errors_total
from api.ratelimit.gcra import Decision, InProcessBackend
from api.ratelimit.policies import Policy
from api.ratelimit.resp import RedisConnectionError, RespProtocol, open_connection
from api.redis_url import RedisAddress

logger = logging.getLogger("api.ratelimit")

DEFAULT_TIMEOUT_SECONDS = 0.05
DEFAULT_COOLDOWN_SECONDS = 1.0
# Bounds the time one script keeps Redis busy (each key is a GET and maybe a SET).
MAX_BATCH = 256
# Connecting (TCP, TLS, AUTH) may take longer than one decision's budget; requests do not
# wait for it (they fall back), the connection attempt itself gives up after this.
CONNECT_TIMEOUT_SECONDS = 1.0

# KEYS[i]: one key per decision. ARGV[1]: now (ms); ARGV[2i], ARGV[2i+1]: interval (ms) and
# quota of decision i. Returns, per decision, 1/0 (admitted) and how many ms the key's
# theoretical arrival time runs ahead of now. Same arithmetic as gcra.gcra_step.
GCRA_SCRIPT = """
local now = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local burst = interval * tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  if new_tat - now > burst then
    out[2 * i - 1] = 0
    out[2 * i] = tat - now
  else
    redis.call('SET', KEYS[i], new_tat, 'PX', new_tat - now)
    out[2 * i - 1] = 1
    out[2 * i] = new_tat - now
  end
end
return out
"""
GCRA_SCRIPT_SHA = hashlib.sha1(GCRA_SCRIPT.encode(), usedforsecurity=False).hexdigest()

_Pending = tuple[str, Policy, "asyncio.Future[Decision]"]


class RedisReplyError(RuntimeError):
    """Redis answered the batch with an error, or with something the script cannot return."""


@dataclass(eq=False)
class _Batch:
    items: list[_Pending]
    keys: list[str]
    args: list[int]
    deadline: asyncio.TimerHandle | None = None
    finished: bool = False
    reloaded: bool = False


class RedisBackend:
    def __init__(
        self,
        url: str,
        fallback: InProcessBackend,
        *,
        clock_ms: Callable[[], int],
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        cooldown: float = DEFAULT_COOLDOWN_SECONDS,
    ) -> None:
        self._address = RedisAddress.parse(url)
        self._fallback = fallback
        self._clock_ms = clock_ms
        self._timeout = timeout
        self._cooldown = cooldown
        self._connection: RespProtocol | None = None
        self._connecting: asyncio.Task[None] | None = None
        # Set once a connection attempt has outlasted the budget: decisions stop waiting for it.
        self._connect_slow = False
        self._release_timer: asyncio.TimerHandle | None = None
        self._pending: list[_Pending] = []
        self._in_flight = False
        self._flush_scheduled = False
        self._unavailable_until = 0.0

    # --- decisions -------------------------------------------------------------------------

    async def decide(self, key: str, policy: Policy) -> Decision:
        if self._connect_slow or time.monotonic() < self._unavailable_until:
            return self._fall_back(key, policy)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        self._pending.append((key, policy, future))
        if not self._in_flight and not self._flush_scheduled:
            # Sent after the requests already runnable in this loop iteration joined in.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._in_flight or not self._pending:
            return
        if time.monotonic() < self._unavailable_until:
            self._fall_back_all(self._take(len(self._pending)))
            return
        connection = self._connection
        if connection is None or connection.closed:
            self._connect_then_flush()
            return
        items = self._take(MAX_BATCH)
        args: list[int] = [self._clock_ms()]
        for _, policy, _ in items:
            args += (policy.interval_ms, policy.quota)
        batch = _Batch(items=items, keys=[key for key, _, _ in items], args=args)
        self._in_flight = True
        batch.deadline = asyncio.get_running_loop().call_later(
            self._timeout, self._on_deadline, batch, connection
        )
        self._send(batch, connection, "EVALSHA", GCRA_SCRIPT_SHA)

    def _take(self, count: int) -> list[_Pending]:
        items = self._pending[:count]
        del self._pending[:count]
        return items

    def _send(self, batch: _Batch, connection: RespProtocol, verb: str, script: str) -> None:
        command = (verb, script, len(batch.keys), *batch.keys, *batch.args)
        connection.send(command, lambda reply: self._on_reply(batch, connection, reply))

    def _on_reply(self, batch: _Batch, connection: RespProtocol, reply: Any) -> None:
        if batch.finished:
            return  # The deadline already decided this batch in-process.
        if (
            isinstance(reply, hiredis.ReplyError)
            and str(reply).startswith("NOSCRIPT")
            and not batch.reloaded
        ):
            # Redis restarted or was flushed: EVAL runs the batch and caches the script.
            batch.reloaded = True
            self._send(batch, connection, "EVAL", GCRA_SCRIPT)
            return
        if isinstance(reply, RedisConnectionError):
            self._fail(batch, reply)
        elif isinstance(reply, hiredis.ReplyError):
            self._fail(batch, RedisReplyError(str(reply)))
        elif not isinstance(reply, list) or len(reply) != 2 * len(batch.items):
            self._fail(batch, RedisReplyError(f"unexpected script reply {type(reply).__name__}"))
        else:
            self._finish(batch)
            for index, (_, policy, future) in enumerate(batch.items):
                if not future.done():  # done: the client went away while waiting
                    allowed = reply[2 * index] == 1
                    future.set_result(Decision.from_step(policy, allowed, reply[2 * index + 1]))

    def _on_deadline(self, batch: _Batch, connection: RespProtocol) -> None:
        if batch.finished:
            return
        # The late reply would arrive on a connection nobody trusts any more: drop it.
        connection.close()
        if self._connection is connection:
            self._connection = None
        self._fail(batch, TimeoutError(f"no reply within {self._timeout * 1000:.0f} ms"))

    def _finish(self, batch: _Batch) -> None:
        batch.finished = True
        if batch.deadline is not None:
            batch.deadline.cancel()
        self._in_flight = False
        if self._pending and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _fail(self, batch: _Batch, exc: BaseException) -> None:
        self._mark_unavailable(exc)
        self._finish(batch)
        self._fall_back_all(batch.items)

    # --- fallback and recovery -------------------------------------------------------------

    def _fall_back(self, key: str, policy: Policy) -> Decision:
        ratelimit_backend_errors_total.inc()
        return self._fallback.decide(key, policy, self._clock_ms())

    def _fall_back_all(self, items: list[_Pending]) -> None:
        for key, policy, future in items:
            if not future.done():
                future.set_result(self._fall_back(key, policy))

    def _mark_unavailable(self, exc: BaseException) -> None:
        if time.monotonic() >= self._unavailable_until:
            logger.warning(
                "rate-limit Redis unavailable; deciding in-process",
                extra={"error": repr(exc), "retry_in_seconds": self._cooldown},
            )
        self._unavailable_until = time.monotonic() + self._cooldown

    def _connect_then_flush(self) -> None:
        """(Re)connect; the waiting decisions go to Redis once connected, or fall back when
        connecting takes longer than their budget."""
        if self._connecting is not None:
            return
        loop = asyncio.get_running_loop()
        self._in_flight = True  # Nothing is sent before the connection is there.
        self._connecting = loop.create_task(self._connect())
        self._release_timer = loop.call_later(self._timeout, self._release_waiting)

    def _release_waiting(self) -> None:
        if self._connecting is not None:
            self._connect_slow = True
            self._fall_back_all(self._take(len(self._pending)))

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                self._connection = await open_connection(self._address)
        except (OSError, TimeoutError, RedisConnectionError) as exc:
            self._mark_unavailable(exc)
        finally:
            self._connecting = None
            self._connect_slow = False
            if self._release_timer is not None:
                self._release_timer.cancel()
            self._in_flight = False
            # Connected: the waiting decisions go now. Failed: the cool-down sends them
            # to the in-process limiter.
            self._flush()

    # --- lifecycle -------------------------------------------------------------------------

    async def load_script(self) -> None:
        """Connect and load the script at start-up, so the first decisions go straight to
        Redis; failing here is not fatal (decisions fall back until Redis answers)."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                if self._connection is None or self._connection.closed:
                    self._connection = await open_connection(self._address)
                await self._connection.call("SCRIPT", "LOAD", GCRA_SCRIPT)
        except (OSError, TimeoutError, RedisConnectionError) as exc:
            logger.warning("rate-limit Redis not reachable at start-up", extra={"error": repr(exc)})

    async def ping(self) -> None:
        """Readiness: a PING on a connection of its own (never queued behind decisions)."""
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            connection = await open_connection(self._address)
            try:
                await connection.call("PING")
            finally:
                connection.close()

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._fall_back_all(self._take(len(self._pending)))
