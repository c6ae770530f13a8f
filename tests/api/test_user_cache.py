"""The authenticated user cached in Redis: two API instances share one Redis (or one Redis
Cluster) and one PostgreSQL, and a change made through one applies on the other at its very
next request.

Each test first proves the other instance really answers from the cache (its repeated
request sends PostgreSQL nothing at all: neither the user nor the subscription its
entitlements come from), so a refusal afterwards is the invalidation at work, not a cache
that was never used.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis
from fastapi import FastAPI
from redis.crc import key_slot

from api.auth import service
from api.redis_client import redis_client
from api.settings import Settings
from api.user_cache import LOOKUP_SCRIPT, UserCache
from tests.api.auth_helpers import STRONG_PASSWORD, bearer, login, register_and_login
from tests.api.billing_emulator import BillingStripe
from tests.api.billing_support import (
    billing_settings,
    deliver_invoice_event,
    deliver_latest,
    entitlements_of,
    subscribe,
)
from tests.api.payments_support import user_headers
from tests.api.round_trips import SentStatement, statements_sent
from tests.api.test_ratelimit_outage import ThrowawayRedis
from tests.conftest import AppHarness, delete_all_rows, make_settings
from tests.live_server import free_port
from tests.redis_cluster import LocalRedisCluster

pytest_plugins = ("tests.api.stripe_emulator",)
pytestmark = pytest.mark.redis

TEAM = ["api_access", "premium_reports", "team_members"]


@dataclass
class Instance:
    app: FastAPI
    client: httpx.AsyncClient


def reads_users(statements: list[SentStatement]) -> bool:
    return any("FROM users" in statement.sql for statement in statements)


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """One Redis, or a Redis Cluster (REDIS_CLUSTER=true, REDIS_URL naming one node)."""
    if request.param == "redis-cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        return {"redis_url": cluster.url, "redis_cluster": True}
    return {"redis_url": request.getfixturevalue("redis_url")}


@asynccontextmanager
async def two_instances(
    app_harness: AppHarness, settings: Settings, postgres_url: str
) -> AsyncIterator[tuple[Instance, Instance]]:
    """Two apps with the same settings (one PostgreSQL, one Redis), each with its client."""
    first, second = await app_harness.start(settings), await app_harness.start(settings)
    async with AppHarness.client(first) as one, AppHarness.client(second) as two:
        yield Instance(first, one), Instance(second, two)
    delete_all_rows(postgres_url)


@pytest_asyncio.fixture
async def instances(
    app_harness: AppHarness, postgres_url: str, redis_settings: dict[str, Any]
) -> AsyncIterator[tuple[Instance, Instance]]:
    settings = make_settings(postgres_url, **redis_settings)
    async with two_instances(app_harness, settings, postgres_url) as pair:
        yield pair


async def cached_on(instance: Instance, headers: dict[str, str]) -> httpx.Response:
    """Warm the instance's cache, then prove its next request sends PostgreSQL nothing."""
    assert (await instance.client.get("/v1/users/me", headers=headers)).status_code == 200
    with statements_sent(instance.app) as statements:
        response = await instance.client.get("/v1/users/me", headers=headers)
    assert response.status_code == 200, response.text
    assert statements == []
    return response


async def test_disable_on_one_instance_refuses_the_next_request_on_the_other(
    instances: tuple[Instance, Instance],
) -> None:
    one, two = instances
    user = await register_and_login(one.client)
    await cached_on(two, user["headers"])

    async with one.app.state.database.sessions() as db:
        assert await service.disable_user(db, user["user_id"])

    refused = await two.client.get("/v1/users/me", headers=user["headers"])
    assert refused.status_code == 401


async def test_role_change_on_one_instance_applies_on_the_other(
    instances: tuple[Instance, Instance],
) -> None:
    one, two = instances
    user = await register_and_login(one.client)
    assert (await cached_on(two, user["headers"])).json()["role"] == "user"
    assert (await two.client.get("/v1/admin/users", headers=user["headers"])).status_code == 403

    async with one.app.state.database.sessions() as db:
        assert await service.set_role(db, user["email"], "admin")

    assert (await two.client.get("/v1/users/me", headers=user["headers"])).json()["role"] == "admin"
    assert (await two.client.get("/v1/admin/users", headers=user["headers"])).status_code == 200


async def test_password_change_on_one_instance_ends_other_sessions_on_the_other(
    instances: tuple[Instance, Instance],
) -> None:
    one, two = instances
    user = await register_and_login(one.client)
    second_login = await login(one.client, user["email"], STRONG_PASSWORD)
    other_session = bearer(second_login["access_token"])
    await cached_on(two, other_session)
    await cached_on(two, user["headers"])

    changed = await one.client.post(
        "/v1/auth/password",
        headers=user["headers"],
        json={"current_password": STRONG_PASSWORD, "new_password": STRONG_PASSWORD + "-new"},
    )
    assert changed.status_code == 204, changed.text

    assert (await two.client.get("/v1/users/me", headers=other_session)).status_code == 401
    # The session that changed the password stays signed in, with its cache entry renewed.
    assert (await two.client.get("/v1/users/me", headers=user["headers"])).status_code == 200


async def test_logout_on_one_instance_ends_the_session_on_the_other(
    instances: tuple[Instance, Instance],
) -> None:
    one, two = instances
    user = await register_and_login(one.client)
    await cached_on(two, user["headers"])

    logout = await one.client.post("/v1/auth/logout", json={"refresh_token": user["refresh_token"]})
    assert logout.status_code == 204

    assert (await two.client.get("/v1/users/me", headers=user["headers"])).status_code == 401


@pytest_asyncio.fixture
async def billing_instances(
    app_harness: AppHarness, postgres_url: str, redis_url: str, billing_stripe: BillingStripe
) -> AsyncIterator[tuple[Instance, Instance]]:
    settings = billing_settings(postgres_url, billing_stripe.url).model_copy(
        update={"redis_url": redis_url}
    )
    async with two_instances(app_harness, settings, postgres_url) as pair:
        yield pair


async def test_subscription_change_on_one_instance_changes_entitlements_on_the_other(
    billing_instances: tuple[Instance, Instance], billing_stripe: BillingStripe
) -> None:
    one, two = billing_instances
    headers = await user_headers(one.client)
    created = await subscribe(one.client, headers)
    assert (await cached_on(two, headers)).json()["entitlements"] == []

    # Stripe tells instance one that the first invoice is paid: the plan is active.
    billing_stripe.pay(created["id"])
    paid = await deliver_invoice_event(one.client, billing_stripe, "invoice.paid", created["id"])
    assert paid == "processed"

    assert await entitlements_of(two.client, headers) == TEAM
    assert (await cached_on(two, headers)).json()["entitlements"] == TEAM

    billing_stripe.end(created["id"])
    ended = await deliver_latest(
        one.client, billing_stripe, "customer.subscription.deleted", created["id"]
    )
    assert ended == "processed"

    assert await entitlements_of(two.client, headers) == []


async def test_redis_outage_bypasses_the_cache_without_an_error(
    app_harness: AppHarness, postgres_url: str, tmp_path: Path
) -> None:
    throwaway_redis = ThrowawayRedis(tmp_path)
    throwaway_redis.start()
    app = await app_harness.start(make_settings(postgres_url, redis_url=throwaway_redis.url))
    try:
        async with AppHarness.client(app) as client:
            instance = Instance(app, client)
            user = await register_and_login(client)
            await cached_on(instance, user["headers"])

            throwaway_redis.kill()
            for _ in range(3):
                with statements_sent(app) as statements:
                    answer = await client.get("/v1/users/me", headers=user["headers"])
                assert answer.status_code == 200, answer.text
                assert reads_users(statements)  # straight to PostgreSQL

            # A change while Redis is down still applies at the next request.
            async with app.state.database.sessions() as db:
                assert await service.disable_user(db, user["user_id"])
            assert (await client.get("/v1/users/me", headers=user["headers"])).status_code == 401
    finally:
        throwaway_redis.kill()
        delete_all_rows(postgres_url)


async def test_an_unreachable_cluster_bypasses_the_cache_without_an_error(
    app_harness: AppHarness, postgres_url: str
) -> None:
    """REDIS_CLUSTER=true and no node answers: the cluster client cannot even read the slot
    map (a failure redis-py does not report as a RedisError); users are still served."""
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    app = await app_harness.start(
        make_settings(postgres_url, redis_url=nowhere, redis_cluster=True)
    )
    try:
        async with AppHarness.client(app) as client:
            user = await register_and_login(client)
            for _ in range(2):
                with statements_sent(app) as statements:
                    answer = await client.get("/v1/users/me", headers=user["headers"])
                assert answer.status_code == 200, answer.text
                assert reads_users(statements)
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["failing"] == ["redis"]
    finally:
        delete_all_rows(postgres_url)


def _lookup_calls(nodes: list[redis.Redis]) -> int:
    """Lookup script calls the nodes ran since their slow logs were reset (each logs every
    command: slowlog-log-slower-than 0)."""
    sha = LOOKUP_SCRIPT.sha.encode()
    return sum(
        1
        for node in nodes
        for entry in node.slowlog_get(1000)
        if entry["command"].split()[:2] == [b"EVALSHA", sha]
    )


@contextmanager
def every_command_logged(nodes: list[redis.Redis]) -> Iterator[None]:
    for node in nodes:
        node.config_set("slowlog-log-slower-than", 0)
        node.config_set("slowlog-max-len", 1000)
        node.slowlog_reset()
    try:
        yield
    finally:
        for node in nodes:
            node.config_set("slowlog-log-slower-than", 10_000)  # Redis's default
            node.slowlog_reset()


async def _concurrent_lookups_answer_each_their_own(
    cache: UserCache, nodes: list[redis.Redis], users: list[tuple[uuid.UUID, uuid.UUID]]
) -> int:
    """The users looked up at once, half of them cached: each lookup gets its own entry.
    Returns the lookup script calls the concurrent round made."""
    half = len(users) // 2
    first = await asyncio.gather(*(cache.get(user, session) for user, session in users))
    assert all(lookup.entry is None and lookup.version for lookup in first)
    for (user, session), lookup in zip(users[:half], first[:half], strict=True):
        assert lookup.version is not None
        await cache.put(user, session, lookup.version, {"user": str(user)})
    with every_command_logged(nodes):
        again = await asyncio.gather(*(cache.get(user, session) for user, session in users))
        calls = _lookup_calls(nodes)
    cached = [{"user": str(user)} for user, _ in users[:half]]
    assert [lookup.entry for lookup in again] == cached + [None] * (len(users) - half)
    assert [lookup.version for lookup in again] == [lookup.version for lookup in first]
    return calls


def _sessions(count: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    return [(uuid.uuid4(), uuid.uuid4()) for _ in range(count)]


def _users_sharing_a_slot(count: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Users whose keys hash to one cluster slot (the user id is their hash tag)."""
    first = uuid.uuid4()
    slot = key_slot(str(first).encode())
    users = [first]
    while len(users) < count:
        candidate = uuid.uuid4()
        if key_slot(str(candidate).encode()) == slot:
            users.append(candidate)
    return [(user, uuid.uuid4()) for user in users]


async def test_concurrent_lookups_go_to_redis_as_one_script_call(tmp_path: Path) -> None:
    throwaway_redis = ThrowawayRedis(tmp_path)
    throwaway_redis.start()
    cache = UserCache(redis_client(throwaway_redis.url, caller_bounds_calls=True))
    try:
        nodes = [throwaway_redis.client()]
        assert await _concurrent_lookups_answer_each_their_own(cache, nodes, _sessions(20)) == 1
    finally:
        await cache.close()
        throwaway_redis.kill()


async def test_concurrent_lookups_on_a_cluster_make_one_call_per_hash_slot(
    redis_cluster: LocalRedisCluster,
) -> None:
    cache = UserCache(redis_client(redis_cluster.url, cluster=True, caller_bounds_calls=True))
    nodes = [node.client() for node in redis_cluster.nodes]
    # Four users in one slot, interleaved with others wherever they hash: a call per slot (a
    # script may not span slots on a cluster), all in one round trip, a pipeline per node.
    together, elsewhere = _users_sharing_a_slot(4), _sessions(4)
    users = [user for pair in zip(together, elsewhere, strict=True) for user in pair]
    slots = {key_slot(str(user).encode()) for user, _ in users}
    try:
        calls = await _concurrent_lookups_answer_each_their_own(cache, nodes, users)
        assert calls == len(slots) < len(users)
    finally:
        await cache.close()


async def test_the_lookup_script_is_loaded_on_every_primary_at_start_up(
    app_harness: AppHarness, postgres_url: str, redis_cluster: LocalRedisCluster
) -> None:
    """Before the first request: otherwise the first lookups connect, read the slot map and
    load the script within their own 250 ms, and one that runs out cools the cache down."""
    primaries = [node.client() for node in redis_cluster.primary_nodes()]
    for primary in primaries:
        primary.script_flush()
    await app_harness.start(
        make_settings(postgres_url, redis_url=redis_cluster.url, redis_cluster=True)
    )
    assert [primary.script_exists(LOOKUP_SCRIPT.sha) for primary in primaries] == [[True]] * len(
        primaries
    )
