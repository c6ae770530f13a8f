"""Database round trips on the hot paths, counted at the wire (tests/api/round_trips.py).

Each number is what the route costs today; a change that adds a round trip fails here with
the list of what was sent, and one that saves a round trip lowers the number on purpose.
The app connects to the session's PostgreSQL database through the counting proxy; requests
are made one at a time, after a first request has opened a pooled connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.api.payments_support import (
    create_payment,
    deliver,
    make_event,
    payment_intent_object,
    payments_settings,
    user_headers,
)
from tests.api.round_trips import PostgresWire
from tests.conftest import AppHarness, delete_all_rows

pytest_plugins = ("tests.api.stripe_emulator",)
pytestmark = pytest.mark.postgres


async def test_the_wire_counts_transaction_control_that_statement_events_miss(
    postgres_wire: PostgresWire,
) -> None:
    engine = create_async_engine(postgres_wire.url)
    sent: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))  # opens the connection, outside the count
            await connection.rollback()
            sent.clear()
            with postgres_wire.measure() as trips:
                await connection.execute(text("SELECT 2"))
                await connection.rollback()
    finally:
        await engine.dispose()

    assert sent == ["SELECT 2"]
    assert trips.statements == ["BEGIN", "SELECT 2", "ROLLBACK"], trips


@pytest_asyncio.fixture(scope="module")
async def wired_app(
    app_harness: AppHarness, postgres_wire: PostgresWire, localstripe_url: str
) -> FastAPI:
    """Payments configured, no Redis: every authenticated request reads the user."""
    return await app_harness.start(payments_settings(postgres_wire.url, localstripe_url))


@pytest_asyncio.fixture(scope="module")
async def wired_app_with_redis(
    app_harness: AppHarness, postgres_wire: PostgresWire, localstripe_url: str, redis_url: str
) -> FastAPI:
    """Payments configured, Redis too: the user cache can answer authentication."""
    return await app_harness.start(
        payments_settings(postgres_wire.url, localstripe_url, redis_url=redis_url)
    )


@pytest_asyncio.fixture
async def client(wired_app: FastAPI, postgres_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with AppHarness.client(wired_app) as http:
        yield http
    delete_all_rows(postgres_url)


@pytest_asyncio.fixture
async def cached_client(
    wired_app_with_redis: FastAPI, postgres_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with AppHarness.client(wired_app_with_redis) as http:
        yield http
    delete_all_rows(postgres_url)


async def test_prices_come_from_the_catalog_in_memory(
    client: httpx.AsyncClient, postgres_wire: PostgresWire
) -> None:
    with postgres_wire.measure() as trips:
        response = await client.get("/v1/prices")

    assert response.status_code == 200, response.text
    assert response.json(), "the catalog is not empty"
    trips.expect(0)


async def test_me_without_the_cache_is_one_read_outside_any_transaction(
    client: httpx.AsyncClient, postgres_wire: PostgresWire
) -> None:
    headers = await user_headers(client)

    with postgres_wire.measure() as trips:
        response = await client.get("/v1/users/me", headers=headers)

    assert response.status_code == 200, response.text
    assert response.json()["entitlements"] == []
    # The user, the token's session and the current subscription in one SELECT; autocommit,
    # so no BEGIN before it and no ROLLBACK after it.
    trips.expect(1)
    assert "subscriptions" in trips.statements[0], trips


async def test_me_on_a_cache_miss_reads_once_and_on_a_hit_not_at_all(
    cached_client: httpx.AsyncClient, postgres_wire: PostgresWire
) -> None:
    headers = await user_headers(cached_client)

    with postgres_wire.measure() as miss:
        first = await cached_client.get("/v1/users/me", headers=headers)
    with postgres_wire.measure() as hit:
        again = await cached_client.get("/v1/users/me", headers=headers)

    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json() == first.json()
    miss.expect(1)
    hit.expect(0)


async def test_a_page_of_payments_reads_the_user_then_the_page(
    client: httpx.AsyncClient, postgres_wire: PostgresWire
) -> None:
    headers = await user_headers(client)
    for _ in range(3):
        await create_payment(client, headers)

    with postgres_wire.measure() as trips:
        response = await client.get("/v1/payments", params={"limit": 2}, headers=headers)

    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 2
    # The user with the token's session, then the page: two reads, each outside any
    # transaction (no BEGIN, no ROLLBACK).
    trips.expect(2)


async def test_a_page_of_payments_with_the_user_cached_reads_only_the_page(
    cached_client: httpx.AsyncClient, postgres_wire: PostgresWire
) -> None:
    headers = await user_headers(cached_client)
    payment = await create_payment(cached_client, headers)
    warm = await cached_client.get("/v1/payments", headers=headers)  # caches the user
    assert warm.status_code == 200, warm.text

    with postgres_wire.measure() as trips:
        response = await cached_client.get("/v1/payments", headers=headers)

    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()["items"]] == [payment["id"]]
    # The page alone.
    trips.expect(1)


async def test_a_new_webhook_event_is_stored_and_applied(
    client: httpx.AsyncClient, postgres_wire: PostgresWire
) -> None:
    headers = await user_headers(client)
    payment = await create_payment(client, headers)
    event = make_event("payment_intent.succeeded", payment_intent_object(payment, "succeeded"))

    with postgres_wire.measure() as trips:
        response = await deliver(client, event)

    assert response.status_code == 200, response.text
    assert response.json()["result"] == "processed"
    # One statement in autocommit mode: INSERT the event and, if it was new, UPDATE the payment.
    trips.expect(1)


async def test_a_duplicate_webhook_event_is_acknowledged(
    client: httpx.AsyncClient, postgres_wire: PostgresWire
) -> None:
    headers = await user_headers(client)
    payment = await create_payment(client, headers)
    event = make_event("payment_intent.succeeded", payment_intent_object(payment, "succeeded"))
    first = await deliver(client, event)
    assert first.json()["result"] == "processed"

    with postgres_wire.measure() as trips:
        response = await deliver(client, event)

    assert response.status_code == 200, response.text
    assert response.json()["result"] == "duplicate"
    # The same statement: its INSERT conflicts, and it reads that the event was processed.
    trips.expect(1)


async def test_bursts_of_deliveries_reuse_the_pooled_connections(
    client: httpx.AsyncClient, postgres_wire: PostgresWire
) -> None:
    """Connections a burst opened stay pooled for the next one: closing them on return and
    opening others (a PostgreSQL server process each) cost more than the deliveries."""
    # Events of a type the service stores and acknowledges without acting on it.
    events = [
        make_event("customer.created", {"id": f"cus_{n}", "object": "customer"}) for n in range(64)
    ]
    first = await asyncio.gather(*(deliver(client, event) for event in events[:32]))
    assert {response.json()["result"] for response in first} == {"ignored"}

    with postgres_wire.measure() as trips:
        second = await asyncio.gather(*(deliver(client, event) for event in events[32:]))

    assert {response.json()["result"] for response in second} == {"ignored"}
    assert trips.connections_opened == 0, str(trips)
