"""Redis backend: one atomic Lua script, concurrent decisions coalesced into one round trip.

Requests that need a decision while a round trip is in flight queue up; when it returns,
all of them go to Redis together as ONE `EVALSHA` over their keys. The script handles the
keys one after another inside a single atomic execution, so every decision is atomic (no
read-then-write race between API instances) and a busy worker pays one round trip and one
command's client-side overhead for dozens of requests.

Whenever Redis errors, or a round trip takes longer than `timeout` (50 ms), the decisions of
that batch are made by the in-process backend instead and counted in
`ratelimit_backend_errors_total`; no request fails because of Redis. After a failure, Redis is
left alone for `cooldown` seconds (decisions stay in-process, still counted), then tried again,
so the limiter recovers on its own when Redis is back.

Keys of one batch may hash to different slots: this needs a standalone (non-cluster) Redis,
which is what the deployment provisions.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from api.observability.metrics import ratelimit_backend_errors_total
from api.ratelimit.gcra import Decision, InProcessBackend
from api.ratelimit.policies import Policy

logger = logging.getLogger("api.ratelimit")

DEFAULT_TIMEOUT_SECONDS = 0.05
DEFAULT_COOLDOWN_SECONDS = 1.0
# Bounds the time one script keeps Redis busy (each key is a GET and maybe a SET).
MAX_BATCH = 256

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


def connect(url: str) -> Redis:
    """A client that never retries on its own: the caller's 50 ms budget decides."""
    client: Redis = Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    return client


class RedisBackend:
    def __init__(
        self,
        client: Redis,
        fallback: InProcessBackend,
        *,
        clock_ms: Callable[[], int],
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        cooldown: float = DEFAULT_COOLDOWN_SECONDS,
    ) -> None:
        self.client = client
        self._fallback = fallback
        self._clock_ms = clock_ms
        self._timeout = timeout
        self._cooldown = cooldown
        self._pending: list[_Pending] = []
        self._draining = False
        self._drain_task: asyncio.Task[None] | None = None
        self._unavailable_until = 0.0

    async def load_script(self) -> None:
        """Load the script at start-up so the first decisions need no NOSCRIPT detour."""
        try:
            async with asyncio.timeout(1.0):
                await self.client.script_load(GCRA_SCRIPT)
        except (RedisError, OSError, TimeoutError) as exc:
            # Not fatal: decisions fall back until Redis answers, then load it on NOSCRIPT.
            logger.warning("rate-limit script not loaded", extra={"error": repr(exc)})

    async def decide(self, key: str, policy: Policy) -> Decision:
        if time.monotonic() < self._unavailable_until:
            return self._fall_back(key, policy)
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._pending.append((key, policy, future))
        if not self._draining:
            self._draining = True
            self._drain_task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Send what queued up, one batch at a time, until nothing is waiting."""
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._decide_batch(batch)
        finally:
            self._draining = False

    async def _decide_batch(self, batch: list[_Pending]) -> None:
        if time.monotonic() < self._unavailable_until:
            for key, policy, future in batch:
                if not future.done():
                    future.set_result(self._fall_back(key, policy))
            return
        now_ms = self._clock_ms()
        keys = [key for key, _, _ in batch]
        args: list[int] = [now_ms]
        for _, policy, _ in batch:
            args += (policy.interval_ms, policy.quota)
        try:
            async with asyncio.timeout(self._timeout):
                replies = await self._evalsha(keys, args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._mark_unavailable(exc)
            replies = None
        except Exception:
            # A bug here must not leave requests waiting forever: decide them in-process.
            logger.exception("rate-limit batch failed")
            replies = None
        for index, (key, policy, future) in enumerate(batch):
            if future.done():
                continue  # The request went away (client disconnected) while waiting.
            if replies is None:
                future.set_result(self._fall_back(key, policy))
            else:
                allowed = replies[2 * index] == 1
                future.set_result(Decision.from_step(policy, allowed, int(replies[2 * index + 1])))

    async def _evalsha(self, keys: list[str], args: list[int]) -> list[int]:
        try:
            replies = await self.client.evalsha(GCRA_SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:
            # Redis restarted or was flushed: load once more and retry within the same budget.
            await self.client.script_load(GCRA_SCRIPT)
            replies = await self.client.evalsha(GCRA_SCRIPT_SHA, len(keys), *keys, *args)
        if not isinstance(replies, list) or len(replies) != 2 * len(keys):
            raise RedisError(f"unexpected rate-limit script reply: {type(replies).__name__}")
        return replies

    def _mark_unavailable(self, exc: BaseException) -> None:
        if time.monotonic() >= self._unavailable_until:
            logger.warning(
                "rate-limit Redis unavailable; deciding in-process",
                extra={"error": repr(exc), "retry_in_seconds": self._cooldown},
            )
        self._unavailable_until = time.monotonic() + self._cooldown

    def _fall_back(self, key: str, policy: Policy) -> Decision:
        ratelimit_backend_errors_total.inc()
        return self._fallback.decide(key, policy, self._clock_ms())

    async def ping(self) -> None:
        async with asyncio.timeout(1.0):
            await self.client.ping()

    async def close(self) -> None:
        if self._drain_task is not None and not self._drain_task.done():
            await asyncio.wait([self._drain_task], timeout=1.0)
        await self.client.aclose()
