"""The limiter on a Redis Cluster (REDIS_CLUSTER=true) while the cluster changes under it:
slots move between primaries (ASK, then MOVED), a replica takes over from its primary, a
primary dies. Requests keep flowing through the app; none may fail, and decisions return to
Redis once the cluster has settled.

The same policies, headers and refusals as on one Redis are checked by every test of
test_ratelimit.py, which also runs on this cluster.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
import pytest_asyncio
import uvloop
from prometheus_client import REGISTRY
from redis.crc import key_slot

from api.ratelimit.gcra import InProcessBackend
from api.ratelimit.redis_backend import RedisBackend, backend_client
from tests.api.ratelimit_harness import FIXTURES, LimitedApp, migrated_sqlite, start_limited_app
from tests.api.test_ratelimit_outage import decide_while_the_loop_is_busy
from tests.redis_cluster import ClusterNode, LocalRedisCluster

pytestmark = pytest.mark.redis

COOLDOWN_SECONDS = 0.05
# Enough client addresses that every primary holds some of their keys.
CLIENT_COUNT = 48
CLUSTER_POLICIES = FIXTURES / "ratelimits_cluster.toml"
QUOTA = 1000


@pytest.fixture(scope="module")
def cluster_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory, "rl-cluster")


@pytest_asyncio.fixture
async def limited(
    cluster_database: str, redis_cluster: LocalRedisCluster
) -> AsyncIterator[LimitedApp]:
    """The app on the cluster, with a short cool-down so that it tries Redis again soon
    after a failure (and a generous budget, see ratelimit_harness), and long-lived keys."""
    async with AsyncExitStack() as stack:
        yield await start_limited_app(
            stack,
            cluster_database,
            redis_url=redis_cluster.url,
            redis_cluster=True,
            policy_file=CLUSTER_POLICIES,
            redis_cooldown=COOLDOWN_SECONDS,
        )


def _fallbacks() -> float:
    return REGISTRY.get_sample_value("ratelimit_backend_errors_total") or 0.0


def _client_ip(index: int) -> str:
    return f"198.51.100.{index + 1}"


async def _get(limited: LimitedApp, ip: str) -> httpx.Response:
    async with limited.client(ip) as client:
        return await client.get("/v1/prices")


def _remaining(response: httpx.Response) -> int:
    """`r` of the anonymous policy's RateLimit member."""
    assert response.status_code == 200, response.text
    return int(response.headers["RateLimit"].split("r=")[1].split(";")[0])


async def _warm_up(limited: LimitedApp, cluster: LocalRedisCluster) -> dict[str, ClusterNode]:
    """One request from each client; returns the primary that holds each client's key."""
    for index in range(CLIENT_COUNT):
        assert _remaining(await _get(limited, _client_ip(index))) == QUOTA - 1
    holders: dict[str, ClusterNode] = {}
    for node in cluster.primary_nodes():
        for key in node.client().scan_iter(match=limited.key_prefix + "*"):
            holders[key.decode().rsplit(":", 1)[1]] = node
    assert len(holders) == CLIENT_COUNT
    return holders


async def _traffic_during(
    limited: LimitedApp, disruption: Callable[[], Awaitable[object]], after: int = 200
) -> list[int]:
    """Statuses of requests sent by every client in a loop from before `disruption` starts
    until `after` more requests have been answered once it has ended."""
    statuses: list[int] = []
    target: list[int] = []  # set once the disruption is over

    async def one_client(ip: str) -> None:
        async with limited.client(ip) as client:
            while not target or len(statuses) < target[0]:
                statuses.append((await client.get("/v1/prices")).status_code)
                await asyncio.sleep(0)

    clients = asyncio.gather(*(one_client(_client_ip(i)) for i in range(CLIENT_COUNT)))
    try:
        await disruption()
        target.append(len(statuses) + after)
    finally:
        target.append(0)  # stops the clients even if the disruption failed
        await clients
    return statuses


async def _decided_on_redis(limited: LimitedApp, ips: list[str]) -> bool:
    """One round of requests from `ips`, after the cool-down: did none fall back?"""
    await asyncio.sleep(COOLDOWN_SECONDS * 2)
    before = _fallbacks()
    for ip in ips:
        assert (await _get(limited, ip)).status_code == 200
    return _fallbacks() == before


async def test_decisions_of_one_batch_span_every_primary(
    limited: LimitedApp, redis_cluster: LocalRedisCluster
) -> None:
    """Concurrent requests from many clients share round trips although their keys hash to
    slots on different primaries; every decision is made on the cluster, none is lost."""
    before = _fallbacks()
    ips = [_client_ip(i) for i in range(CLIENT_COUNT)]
    responses = await asyncio.gather(*(_get(limited, ip) for ip in ips * 3))
    assert sorted(_remaining(response) for response in responses) == sorted(
        [QUOTA - 3, QUOTA - 2, QUOTA - 1] * CLIENT_COUNT
    )
    assert _fallbacks() == before
    stored = redis_cluster.keys(limited.key_prefix + "*")
    assert sum(len(keys) for keys in stored.values()) == CLIENT_COUNT
    assert all(stored.values()), stored  # every primary holds some of them


def test_a_busy_event_loop_does_not_turn_fast_replies_into_fallbacks(
    redis_cluster: LocalRedisCluster,
) -> None:
    """As on one Redis (test_ratelimit_outage.py), with batches split over the primaries."""
    before = _fallbacks()
    prefix = f"busy:{uuid.uuid4().hex}:"

    async def decide() -> list[bool]:
        backend = RedisBackend(
            backend_client(redis_cluster.url, cluster=True),
            InProcessBackend(),
            clock_ms=lambda: int(time.time() * 1000),
            timeout=0.05,
        )
        await backend.load_script()
        try:
            return await decide_while_the_loop_is_busy(backend, prefix)
        finally:
            await backend.close()

    assert uvloop.run(decide()) == [True] * 48
    assert _fallbacks() == before
    stored = redis_cluster.keys(prefix + "*")
    assert sum(len(keys) for keys in stored.values()) == 12
    # The batches spanned primaries (twelve random keys on one node: odds of 1 in 177,000).
    assert sum(1 for keys in stored.values() if keys) >= 2, stored


async def test_moving_slots_between_primaries_keeps_every_decision(
    limited: LimitedApp, redis_cluster: LocalRedisCluster
) -> None:
    """Resharding: clients' keys move to another primary. While their slots migrate the
    limiter follows ASK, afterwards MOVED; each client's count goes on where it was."""
    holders = await _warm_up(limited, redis_cluster)
    source = next(iter(holders.values()))
    target = next(node for node in redis_cluster.primary_nodes() if node != source)
    moving = [ip for ip, node in holders.items() if node == source]
    slots = sorted({key_slot(key) for key in source.client().scan_iter(limited.key_prefix + "*")})
    asks, moves = redis_cluster.error_replies("ASK"), redis_cluster.error_replies("MOVED")
    before = _fallbacks()

    redis_cluster.begin_migration(slots, source, target)
    assert [_remaining(await _get(limited, ip)) for ip in moving] == [QUOTA - 2] * len(moving)
    assert redis_cluster.error_replies("ASK") > asks

    redis_cluster.end_migration(slots, source, target)
    assert [_remaining(await _get(limited, ip)) for ip in moving] == [QUOTA - 3] * len(moving)
    assert redis_cluster.error_replies("MOVED") > moves

    assert _fallbacks() == before  # decided on the cluster throughout
    stored = redis_cluster.keys(limited.key_prefix + "*")
    assert {key.decode().rsplit(":", 1)[1] for key in stored[target.port]} >= set(moving)


async def test_failover_to_a_replica_mid_run_fails_no_request(
    limited: LimitedApp, redis_cluster: LocalRedisCluster
) -> None:
    """`CLUSTER FAILOVER` while every client keeps sending: the demoted primary answers
    MOVED, the promoted replica has no scripts (they are not replicated) and answers
    NOSCRIPT, and the limiter handles both."""
    holders = await _warm_up(limited, redis_cluster)
    primary = next(iter(holders.values()))
    moved = [ip for ip, node in holders.items() if node == primary]
    moves, noscripts = redis_cluster.error_replies("MOVED"), redis_cluster.error_replies("NOSCRIPT")
    promoted: list[ClusterNode] = []

    async def fail_over() -> None:
        promoted.append(await asyncio.to_thread(redis_cluster.fail_over, primary))

    statuses = await _traffic_during(limited, fail_over)
    assert set(statuses) == {200}, statuses
    assert redis_cluster.error_replies("MOVED") > moves
    assert redis_cluster.error_replies("NOSCRIPT") > noscripts
    assert await _decided_on_redis(limited, moved)
    stored = redis_cluster.keys(limited.key_prefix + "*")
    assert {key.decode().rsplit(":", 1)[1] for key in stored[promoted[0].port]} >= set(moved)


async def test_a_primary_killed_mid_run_fails_no_request(
    limited: LimitedApp, redis_cluster: LocalRedisCluster
) -> None:
    """A primary dies while every client keeps sending: its clients' decisions fall back
    in-process (counted) until its replica has taken over, then return to the cluster."""
    holders = await _warm_up(limited, redis_cluster)
    victim = next(iter(holders.values()))
    orphaned = [ip for ip, node in holders.items() if node == victim]
    before = _fallbacks()

    async def kill_and_settle() -> None:
        redis_cluster.kill(victim)
        await asyncio.to_thread(redis_cluster.wait_until_settled)

    try:
        statuses = await _traffic_during(limited, kill_and_settle)
        assert set(statuses) == {200}, statuses
        assert _fallbacks() > before
        # The first requests after the take-over may still meet the old slot map (each
        # failure makes the client re-read it); then the clients are decided on Redis again.
        for _ in range(10):
            if await _decided_on_redis(limited, orphaned):
                break
        assert [await _decided_on_redis(limited, orphaned) for _ in range(3)] == [True] * 3
    finally:
        await asyncio.to_thread(redis_cluster.restart, victim)
