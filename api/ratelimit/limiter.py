"""`RateLimiter`: policies, client IPs, the backend (Redis or in-process) and the metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter

from api.observability.metrics import ratelimit_decisions_total
from api.ratelimit.client_ip import ClientIpResolver, IPNetwork
from api.ratelimit.gcra import Decision, InProcessBackend
from api.ratelimit.policies import Policy, PolicySet, load_policy_set
from api.settings import Settings

if TYPE_CHECKING:
    from api.ratelimit.redis_backend import RedisBackend

DEFAULT_KEY_PREFIX = "slipway:rl:"


def _redis_backend(
    url: str,
    cluster: bool,
    fallback: InProcessBackend,
    clock_ms: Callable[[], int],
    timeout: float | None,
    cooldown: float | None,
) -> RedisBackend:
    # Imported here: redis-py is not loaded by a process that limits in-process (a dev stack's
    # Lambda), where it was a tenth of the cold start.
    from api.ratelimit import redis_backend

    return redis_backend.RedisBackend(
        redis_backend.backend_client(url, cluster=cluster),
        fallback,
        clock_ms=clock_ms,
        timeout=redis_backend.DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout,
        cooldown=redis_backend.DEFAULT_COOLDOWN_SECONDS if cooldown is None else cooldown,
    )


class RateLimiter:
    """Decides one request at a time; keys are `<prefix><policy>:<identity>`.

    `clock` (seconds since the epoch) drives both backends, so tests can move time forward
    instead of sleeping; `key_prefix` keeps concurrent test sessions apart on one Redis.
    """

    def __init__(
        self,
        policies: PolicySet,
        *,
        redis_url: str | None = None,
        redis_cluster: bool = False,
        trusted_proxies: Sequence[IPNetwork] = (),
        origin_verify_secret: str | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        clock: Callable[[], float] = time.time,
        redis_timeout: float | None = None,
        redis_cooldown: float | None = None,
    ) -> None:
        self.policies = policies
        self.client_ip = ClientIpResolver(trusted_proxies, origin_verify_secret)
        self.clock = clock
        self._key_prefix = key_prefix
        self._local = InProcessBackend()
        self._redis = (
            _redis_backend(
                redis_url, redis_cluster, self._local, self.now_ms, redis_timeout, redis_cooldown
            )
            if redis_url
            else None
        )
        # Pre-bound metric children: a label lookup per request would cost a lock and a hash.
        self._counters: dict[str, tuple[Counter, Counter]] = {
            name: (
                ratelimit_decisions_total.labels(name, "allowed"),
                ratelimit_decisions_total.labels(name, "limited"),
            )
            for name in policies.policies
        }

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> RateLimiter:
        return cls(
            load_policy_set(settings.rate_limits_file),
            redis_url=settings.redis_url,
            redis_cluster=settings.redis_cluster,
            trusted_proxies=settings.trusted_proxies,
            origin_verify_secret=(
                settings.origin_verify_secret.get_secret_value()
                if settings.origin_verify_secret
                else None
            ),
            **overrides,  # type: ignore[arg-type]
        )

    @property
    def uses_redis(self) -> bool:
        return self._redis is not None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def decide(self, policy: Policy, identity: str) -> Decision:
        key = f"{self._key_prefix}{policy.name}:{identity}"
        if self._redis is None:
            decision = self._local.decide(key, policy, self.now_ms())
        else:
            decision = await self._redis.decide(key, policy)
        allowed, limited = self._counters[policy.name]
        (allowed if decision.allowed else limited).inc()
        return decision

    async def start(self) -> None:
        if self._redis is not None:
            await self._redis.load_script()

    async def ping(self) -> None:
        """Readiness: raises when Redis does not answer (in-process needs nothing)."""
        if self._redis is not None:
            await self._redis.ping()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
