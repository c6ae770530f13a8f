"""Redis backend: one atomic Lua script, concurrent decisions coalesced into one round trip.

Requests needing a decision while a round trip is in flight queue up; when its reply comes
back, all of them go to Redis together as ONE `EVALSHA` over their keys. The script handles
the keys one after another inside a single atomic execution, so every decision is atomic (no
read-then-write race between API instances) and a busy worker pays one round trip and one
command for dozens of requests. The script is loaded at start-up; a NOSCRIPT reply (Redis
restarted or was flushed, or a replica was promoted: scripts are not replicated) is answered
by sending the same keys once as `EVAL`, which loads it again.

On a Redis Cluster (REDIS_CLUSTER) a script may only touch keys of one hash slot, so a batch
is split by slot: one `EVALSHA` per slot, all of them in one pipeline (api.redis_scripts). The
round trip stays one (per node, in parallel); MOVED and ASK replies during resharding or
failover are followed by redis-py.

Whenever Redis errors, or the reply has not arrived 50 ms (`timeout`) after the batch was
sent (a reply already read by then but still queued behind other work of a busy event loop
counts as arrived), the decisions concerned are made by the in-process backend instead and
counted in `ratelimit_backend_errors_total`; no request fails because of Redis. After a
failure Redis is left alone for `cooldown` seconds (decisions stay in-process, still counted),
then tried again, so the limiter recovers on its own when Redis is back. A command the
deadline gave up on is not cancelled at once (that would drop its connection, or interrupt a
cluster's topology refresh): it may go on in the background for a second, and its reply is
ignored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.observability.metrics import ratelimit_backend_errors_total
from api.ratelimit.gcra import Decision, InProcessBackend
from api.ratelimit.policies import Policy
from api.redis_client import redis_client, redis_failures
from api.redis_scripts import Script, by_slot, run_script

if TYPE_CHECKING:
    from api.redis_client import AsyncRedis

logger = logging.getLogger("api.ratelimit")

DEFAULT_TIMEOUT_SECONDS = 0.05
DEFAULT_COOLDOWN_SECONDS = 1.0
# Bounds the time one script keeps Redis busy (each key is a GET and maybe a SET).
MAX_BATCH = 256
# Turns of the event loop the deadline waits before deciding in-process: a reply read from
# the socket reaches this module through wake-ups of one turn each (one for a command, three
# for a cluster pipeline: node task, gather, caller), and timers may run before them.
GRACE_TURNS = 3
# A deadline timer firing this much later than due means the event loop was busy elsewhere.
LOOP_LAG = 0.01
# How long a round trip the deadline gave up on may go on (connecting, TLS and AUTH included;
# then it is cancelled, which closes its connection), and how long start-up and readiness
# wait: longer than one decision's budget.
COMMAND_TIMEOUT_SECONDS = 1.0
# Failures after which a cluster client must re-read the slot map before the next command
# (a pipeline does not do it by itself): a node died, or a failover is under way.
_TOPOLOGY_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    RedisClusterException,
    OSError,
)

# KEYS[i]: one key per decision. ARGV[1]: now (ms); ARGV[2i], ARGV[2i+1]: interval (ms) and
# quota of decision i. Returns, per decision, 1/0 (admitted) and how many ms the key's
# theoretical arrival time runs ahead of now. Same arithmetic as gcra.gcra_step.
GCRA_SCRIPT = Script("""
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
""")
GCRA_SCRIPT_SHA = GCRA_SCRIPT.sha

_Pending = tuple[str, Policy, "asyncio.Future[Decision]"]


def backend_client(url: str, *, cluster: bool = False) -> AsyncRedis:
    """The limiter's client: no socket timeouts (each costs an event-loop turn, see
    redis_client); this module bounds every round trip itself."""
    return redis_client(
        url, cluster=cluster, timeout_seconds=COMMAND_TIMEOUT_SECONDS, caller_bounds_calls=True
    )


class RedisReplyError(RuntimeError):
    """Redis answered with something the script cannot return."""


@dataclass(eq=False)
class _Group:
    """Decisions evaluated by one script call (on a cluster: keys of one hash slot)."""

    items: list[_Pending]
    command: tuple[Any, ...]  # numkeys, keys, now, then interval and quota per key

    @classmethod
    def of(cls, items: list[_Pending], now_ms: int) -> _Group:
        args: list[int] = [now_ms]
        for _, policy, _ in items:
            args += (policy.interval_ms, policy.quota)
        return cls(items, (len(items), *(key for key, _, _ in items), *args))


@dataclass(eq=False)
class _Batch:
    groups: list[_Group]
    deadline: asyncio.TimerHandle | None = None
    extended: bool = False
    finished: bool = False
    items: list[_Pending] = field(default_factory=list)


class RedisBackend:
    def __init__(
        self,
        client: AsyncRedis,
        fallback: InProcessBackend,
        *,
        clock_ms: Callable[[], int],
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        cooldown: float = DEFAULT_COOLDOWN_SECONDS,
    ) -> None:
        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        self._fallback = fallback
        self._clock_ms = clock_ms
        self._timeout = timeout
        self._cooldown = cooldown
        self._pending: list[_Pending] = []
        self._in_flight = False
        self._flush_scheduled = False
        self._unavailable_until = 0.0
        # Round trips under way, kept referenced until they end (also those given up on).
        self._round_trips: set[asyncio.Task[None]] = set()

    # --- decisions -------------------------------------------------------------------------

    async def decide(self, key: str, policy: Policy) -> Decision:
        if time.monotonic() < self._unavailable_until:
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
        items = self._take(MAX_BATCH)
        batch = _Batch(groups=self._groups(items, self._clock_ms()), items=items)
        self._in_flight = True
        round_trip = asyncio.get_running_loop().create_task(self._round_trip(batch))
        self._round_trips.add(round_trip)
        round_trip.add_done_callback(self._round_trips.discard)

    def _take(self, count: int) -> list[_Pending]:
        items = self._pending[:count]
        del self._pending[:count]
        return items

    def _groups(self, items: list[_Pending], now_ms: int) -> list[_Group]:
        return [
            _Group.of(group, now_ms)
            for group in by_slot(items, lambda item: item[0], cluster=self._cluster)
        ]

    async def _round_trip(self, batch: _Batch) -> None:
        # The budget starts now, as the command is written (this task's first step may come
        # a turn of a busy event loop after the flush).
        batch.deadline = asyncio.get_running_loop().call_later(
            self._timeout, self._on_deadline, batch, GRACE_TURNS
        )
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                replies = await self._evaluate(batch.groups)
        except Exception as exc:  # whatever Redis or the client raised: decide in-process
            replies = [exc] * len(batch.groups)
        self._settle(batch, replies)
        failure = next((reply for reply in replies if isinstance(reply, BaseException)), None)
        if self._cluster and isinstance(failure, _TOPOLOGY_ERRORS):
            # The slot map may be stale (a node died or was demoted): re-read it before the
            # next command. Closing does that; it is cheap next to a failed round trip.
            assert isinstance(self._client, RedisCluster)
            await self._client.aclose()

    async def _evaluate(self, groups: list[_Group]) -> list[Any]:
        """One reply per group: the script's list, or the error Redis answered it with."""
        return await run_script(self._client, GCRA_SCRIPT, [group.command for group in groups])

    def _settle(self, batch: _Batch, replies: list[Any]) -> None:
        """Decide every group from its reply (in-process where it failed)."""
        if batch.finished:
            return  # The deadline already decided this batch in-process.
        failure: BaseException | None = None
        for group, reply in zip(batch.groups, replies, strict=True):
            if isinstance(reply, list) and len(reply) == 2 * len(group.items):
                for index, (_, policy, future) in enumerate(group.items):
                    if not future.done():  # done: the client went away while waiting
                        allowed = reply[2 * index] == 1
                        future.set_result(Decision.from_step(policy, allowed, reply[2 * index + 1]))
            else:
                failure = (
                    reply
                    if isinstance(reply, BaseException)
                    else RedisReplyError(f"unexpected script reply {type(reply).__name__}")
                )
                self._fall_back_all(group.items)
        if failure is not None:
            self._mark_unavailable(failure)
        self._finish(batch)

    def _on_deadline(self, batch: _Batch, turns_left: int) -> None:
        if batch.finished:
            return
        loop = asyncio.get_running_loop()
        late = batch.deadline is not None and loop.time() - batch.deadline.when() > LOOP_LAG
        if turns_left == GRACE_TURNS and late and not batch.extended:
            # The event loop was busy elsewhere when the budget ran out (a long request, a
            # garbage collection): the time went to this process, not to Redis. Once, the
            # batch gets its budget again.
            batch.extended = True
            batch.deadline = loop.call_later(self._timeout, self._on_deadline, batch, GRACE_TURNS)
            return
        if turns_left:
            # The reply may be read already, its wake-ups queued behind a busy loop's work:
            # look again after them, so that only a Redis that really answered late counts.
            loop.call_soon(self._on_deadline, batch, turns_left - 1)
            return
        self._mark_unavailable(TimeoutError(f"no reply within {self._timeout * 1000:.0f} ms"))
        self._finish(batch)
        self._fall_back_all(batch.items)

    def _finish(self, batch: _Batch) -> None:
        batch.finished = True
        if batch.deadline is not None:
            batch.deadline.cancel()
        self._in_flight = False
        if self._pending and not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

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

    # --- lifecycle -------------------------------------------------------------------------

    async def load_script(self) -> None:
        """Connect and load the script at start-up (on a cluster: on every primary), so the
        first decisions go straight to Redis; failing here is not fatal (decisions fall back
        until Redis answers)."""
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                await self._client.script_load(GCRA_SCRIPT.text)
        except redis_failures() as exc:
            logger.warning("rate-limit Redis not reachable at start-up", extra={"error": repr(exc)})

    async def ping(self) -> None:
        """Readiness: PING on a pooled connection of its own (never queued behind decisions);
        on a cluster every primary, which between them hold all the limiter's keys."""
        async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
            if isinstance(self._client, RedisCluster):
                await self._client.ping(target_nodes=RedisCluster.PRIMARIES)
            else:
                await self._client.ping()

    async def close(self) -> None:
        for round_trip in list(self._round_trips):
            round_trip.cancel()
        self._fall_back_all(self._take(len(self._pending)))
        await self._client.aclose()
