"""The hot queries use their indexes on PostgreSQL, as planned over tables of realistic size.

The statements are not written here: each is captured, with its parameters, as the app sends
it while serving the request it belongs to (statement events on the app's engine). They are
then explained (`EXPLAIN (FORMAT JSON)`, not executed) in a scratch database holding a few
thousand rows per table, analysed, so that a sequential scan would be the planner's honest
choice if an index were missing; no planner setting is changed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from tests.api.auth_helpers import register_and_login
from tests.api.payments_support import (
    create_payment,
    deliver,
    make_event,
    payment_intent_object,
    payments_settings,
)
from tests.api.round_trips import SentStatement, statements_sent
from tests.conftest import AppHarness, migrate
from tests.services import create_scratch_postgres_database, drop_postgres_database

pytest_plugins = ("tests.api.stripe_emulator",)
pytestmark = pytest.mark.postgres

# 4,000 users, every user with a live session of three refresh tokens, a Stripe customer with two
# subscriptions (one ended), five payments, each with the Idempotency-Key that created it; and
# Stripe events, several per payment over time.
SEED = """
INSERT INTO users (id, email, password_hash, role, disabled, created_at)
SELECT gen_random_uuid(), 'seed-' || n || '@example.com', 'x', 'user', false,
       now() - n * interval '1 minute'
FROM generate_series(1, 4000) AS n;

INSERT INTO refresh_token_families (id, user_id, created_at, last_used_at, expires_at)
SELECT gen_random_uuid(), id, now(), now(), now() + interval '30 days' FROM users;

INSERT INTO refresh_tokens (id, family_id, token_hash, created_at)
SELECT gen_random_uuid(), f.id, encode(sha256((f.id::text || n)::bytea), 'hex'), now()
FROM refresh_token_families AS f, generate_series(1, 3) AS n;

INSERT INTO billing_customers (user_id, stripe_customer_id, created_at)
SELECT id, 'cus_seed_' || md5(id::text), now() FROM users;

INSERT INTO subscriptions (id, user_id, stripe_customer_id, status, stripe_price_id, currency,
                           unit_amount, interval, interval_count, quantity,
                           cancel_at_period_end, stripe_created_at, created_at, updated_at)
SELECT 'sub_seed_' || md5(c.user_id::text || n), c.user_id, c.stripe_customer_id,
       CASE n WHEN 1 THEN 'canceled' ELSE 'active' END, 'price_team_monthly', 'usd', 4900,
       'month', 1, 1, false, now() - n * interval '1 day', now(), now()
FROM billing_customers AS c, generate_series(1, 2) AS n;

INSERT INTO payments (id, user_id, price_id, quantity, amount, currency, status,
                      amount_refunded, stripe_payment_intent_id, created_at, updated_at)
SELECT gen_random_uuid(), u.id, 'price_onboarding_usd', 1, 4900, 'usd', 'succeeded', 0,
       'pi_seed_' || md5(u.id::text || n), now() - n * interval '1 hour', now()
FROM users AS u, generate_series(1, 5) AS n;

INSERT INTO idempotency_keys (id, user_id, key, request_hash, payment_id, created_at)
SELECT gen_random_uuid(), user_id, 'key-' || id, repeat('0', 64), id, now() FROM payments;

INSERT INTO stripe_events (id, type, payload, event_created_at, received_at, processed_at)
SELECT 'evt_seed_' || n, 'payment_intent.succeeded', '{}', now(), now(), now()
FROM generate_series(1, 40000) AS n;
"""


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def seeded_url() -> Iterator[str]:
    url = create_scratch_postgres_database()
    try:
        migrate(url)
        with psycopg.connect(_libpq(url), autocommit=True) as connection:
            connection.execute(SEED)
            connection.execute("ANALYZE")
        yield url
    finally:
        drop_postgres_database(url)


def _one(sent: list[SentStatement], wanted: Callable[[str], bool], what: str) -> SentStatement:
    found = [statement for statement in sent if wanted(statement.sql)]
    sql = "\n".join(statement.sql.split("\n")[0][:120] for statement in sent)
    assert len(found) == 1, f"{what}: expected one statement, the request sent:\n{sql}"
    return found[0]


@pytest_asyncio.fixture(scope="module")
async def hot_queries(
    app_harness: AppHarness, seeded_url: str, localstripe_url: str
) -> AsyncIterator[dict[str, SentStatement]]:
    """The hot statements, as the app sent them while serving their requests."""
    app = await app_harness.start(payments_settings(seeded_url, localstripe_url))
    queries: dict[str, SentStatement] = {}
    async with AppHarness.client(app) as client:
        user = await register_and_login(client)
        headers = user["headers"]

        with statements_sent(app) as sent:
            assert (await client.get("/v1/users/me", headers=headers)).status_code == 200
        queries["user by id"] = _one(sent, lambda sql: "FROM users" in sql, "user by id")

        with statements_sent(app) as sent:
            refreshed = await client.post(
                "/v1/auth/refresh", json={"refresh_token": user["refresh_token"]}
            )
            assert refreshed.status_code == 200, refreshed.text
        queries["refresh token by hash"] = _one(
            sent,
            lambda sql: "refresh_tokens.token_hash =" in sql and sql.startswith("SELECT"),
            "refresh token by hash",
        )
        headers = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}

        payments = [await create_payment(client, headers)]
        with statements_sent(app) as sent:
            payments.append(await create_payment(client, headers))
        queries["idempotency key by user and key"] = _one(
            sent,
            lambda sql: "FROM idempotency_keys" in sql and sql.startswith("SELECT"),
            "idempotency key by user and key",
        )

        first = await client.get("/v1/payments", params={"limit": 1}, headers=headers)
        cursor = first.json()["next_cursor"]
        with statements_sent(app) as sent:
            page = await client.get(
                "/v1/payments", params={"limit": 1, "cursor": cursor}, headers=headers
            )
            assert page.json()["items"][0]["id"] == payments[0]["id"]
        queries["payments page by user and cursor"] = _one(
            sent, lambda sql: "FROM payments" in sql, "payments page by user and cursor"
        )

        succeeded = payment_intent_object(payments[0], "succeeded")
        with statements_sent(app) as sent:
            delivered = await deliver(client, make_event("payment_intent.succeeded", succeeded))
            assert delivered.json()["result"] == "processed"
        queries["webhook event by id"] = _one(
            sent, lambda sql: "stripe_events" in sql, "webhook event by id"
        )
    await app.state.database.dispose()
    yield queries


def _plan(database_url: str, statement: SentStatement) -> dict[str, Any]:
    with psycopg.connect(_libpq(database_url)) as connection:
        row = connection.execute(
            "EXPLAIN (FORMAT JSON) " + statement.sql, statement.parameters
        ).fetchone()
        connection.rollback()
    assert row is not None
    plan: dict[str, Any] = row[0][0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


INDEX_SCANS = {"Index Scan", "Index Only Scan"}


@dataclass(frozen=True)
class Expected:
    # Relation -> the indexes its scans may use; every scan of the statement must be one of
    # these (a table left out here, or a sequential scan anywhere, fails).
    indexes: dict[str, set[str]]
    # For an INSERT ... ON CONFLICT: the unique index that arbitrates it.
    arbiter: str | None = None


EXPECTED: dict[str, Expected] = {
    # The user, the token's session (by its id, or among the user's by user id), and the
    # subscription that decides the user's entitlements (picked among the user's by the
    # user-and-date index, then joined by its primary key).
    "user by id": Expected(
        {
            "users": {"pk_users"},
            "refresh_token_families": {
                "pk_refresh_token_families",
                "ix_refresh_token_families_user_id",
            },
            "subscriptions": {"ix_subscriptions_user_id_stripe_created_at", "pk_subscriptions"},
        }
    ),
    "refresh token by hash": Expected(
        {
            "refresh_tokens": {"uq_refresh_tokens_token_hash"},
            "refresh_token_families": {"pk_refresh_token_families"},
            "users": {"pk_users"},
        }
    ),
    "payments page by user and cursor": Expected({"payments": {"ix_payments_user_id_created_at"}}),
    "idempotency key by user and key": Expected(
        {"idempotency_keys": {"uq_idempotency_keys_user_id"}}
    ),
    # The event's earlier row read by id, and the payment found by its PaymentIntent or its id.
    "webhook event by id": Expected(
        {
            "stripe_events": {"pk_stripe_events"},
            "payments": {"uq_payments_stripe_payment_intent_id", "pk_payments"},
        },
        arbiter="pk_stripe_events",
    ),
}


def _scans(plan: dict[str, Any]) -> dict[str, set[str]]:
    """Relation -> how the plan reads it: the indexes it scans, or the node type of a scan
    without one (Seq Scan)."""
    scans: dict[str, set[str]] = {}
    for node in _nodes(plan):
        relation, kind = node.get("Relation Name"), node["Node Type"]
        if relation is None or kind == "ModifyTable":  # the table written, not a scan
            continue
        if kind == "Bitmap Heap Scan":  # its Bitmap Index Scans name the indexes
            used = {child["Index Name"] for child in _nodes(node) if "Index Name" in child}
        elif kind in INDEX_SCANS:
            used = {node["Index Name"]}
        else:
            used = {kind}
        scans.setdefault(relation, set()).update(used)
    return scans


@pytest.mark.parametrize("query", sorted(EXPECTED))
def test_a_hot_query_uses_its_indexes(
    query: str, hot_queries: dict[str, SentStatement], seeded_url: str
) -> None:
    plan = _plan(seeded_url, hot_queries[query])
    expected = EXPECTED[query]
    scans = _scans(plan)
    described = f"{query}: {hot_queries[query].sql}\n{json.dumps(plan, indent=1)}"

    assert set(scans) == set(expected.indexes), described
    for relation, used in scans.items():
        assert used <= expected.indexes[relation], f"{relation} scanned by {used}: {described}"
    if expected.arbiter is not None:
        arbiters = [node.get("Conflict Arbiter Indexes", []) for node in _nodes(plan)]
        assert [expected.arbiter] in arbiters, described
