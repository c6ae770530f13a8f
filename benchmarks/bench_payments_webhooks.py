"""Stripe webhook throughput (issue 5): events verified, stored and applied per second.

  bare          FastAPI hello endpoint, no middleware (benchmarks/bare_app.py)
  sig only      a bare FastAPI endpoint that verifies the Stripe signature and answers 200
                (benchmarks/payments_hmac_app.py): the floor of any webhook
  sig + INSERT  the same plus one transaction inserting the event row: verified and stored,
                the floor of any webhook that stores its events (PostgreSQL)
  healthz       GET /healthz from create_app: the whole middleware stack, no database
  slipway new   POST /v1/webhooks/stripe from create_app on PostgreSQL, every request a new,
                signed payment_intent.succeeded for its own payment: signature verified, event
                row inserted and payment moved to succeeded by one statement (one round trip)
  ... 2 conns   the same at 2 connections: the latency of a delivery when the worker is not
                saturated (at 32 the p99 is mostly queueing behind one process)
  slipway dup   the same, but one already-processed event delivered again and again (Stripe's
                retries): verified, found, acknowledged without effect
  slipway sub   billing: every request a new customer.subscription.updated for its own
                subscription: verified, stored, the Customer looked up, the mirror row upserted
                under the ordering rule, one transaction

Unique events cannot be a static wrk body, so the signed deliveries are generated up front and
a wrk Lua script cycles through them (BENCH_WEBHOOK_EVENTS, default 30000; the table says if a
run needed more and so replayed some as duplicates). One uvicorn worker each, wrk -t1.

Goal (issue 17): new events at least twice as fast as before the one-statement webhook, as a
ratio to the bare hello of the same run: 0.038x before (381/s against 10,071/s on an idle
machine), so at least 0.075x.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import stripe
from sqlalchemy import create_engine, delete, func, insert, select, text
from sqlmodel import col

from api.models import metadata
from api.payments.models import Payment, StripeEvent
from benchmarks.bench_auth import _drop_postgres, _migrate, _scratch_postgres
from benchmarks.goals import Goal
from benchmarks.harness import (
    CONNECTIONS,
    DURATION_SECONDS,
    ROOT,
    Result,
    load,
    print_table,
    require_wrk,
    serve,
)

WEBHOOK_SECRET = "whsec_benchmark_0123456789abcdef"  # noqa: S105 (a throwaway benchmark secret)
EVENT_COUNT = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "30000"))
BILLING_EVENT_COUNT = EVENT_COUNT // 2
PAYMENT_INTENT_EXAMPLE = ROOT / "tests" / "fixtures" / "stripe" / "payment_intent.json"
AMOUNT = 4900
NEW_EVENTS = "slipway webhook, new events (PostgreSQL)"
# New events vs the bare hello: 0.038x before the one-statement webhook, goal twice that.
NEW_EVENTS_GOAL = 0.075

# wrk calls request() for every request: each returns the next pre-signed delivery (to the
# path of the URL wrk was given: a nil path means wrk.path).
LUA_SCRIPT = r"""
local requests = {}
local next_index = 0
init = function(args)
  next_index = tonumber(args[2] or "0")  -- deliveries an earlier run already used
  for line in io.lines(args[1]) do
    local signature, body = line:match("^([^\t]*)\t(.*)$")
    table.insert(requests, wrk.format("POST", nil,
      {["Content-Type"] = "application/json", ["Stripe-Signature"] = signature}, body))
  end
end
request = function()
  next_index = next_index + 1
  if next_index > #requests then next_index = 1 end
  return requests[next_index]
end
"""


def _sync(url: str) -> str:
    return url.replace("sqlite+aiosqlite", "sqlite")


def _seed_payments(database_url: str, count: int) -> list[tuple[str, str]]:
    """One user and `count` payments awaiting their succeeded event: (payment id, intent id)."""
    now = datetime.now(UTC)
    user_id = uuid.uuid4()
    rows = [
        {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "price_id": "price_onboarding_usd",
            "quantity": 1,
            "amount": AMOUNT,
            "currency": "usd",
            "status": "requires_payment_method",
            "amount_refunded": 0,
            "stripe_payment_intent_id": f"pi_bench_{index:08d}",
            "created_at": now,
            "updated_at": now,
        }
        for index in range(count)
    ]
    engine = create_engine(_sync(database_url))
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(metadata.tables["users"]),
                {
                    "id": user_id,
                    "email": "bench-payments@example.com",
                    "password_hash": "x",
                    "role": "user",
                    "disabled": False,
                    "created_at": now,
                },
            )
            connection.execute(insert(metadata.tables["payments"]), rows)
        with engine.connect() as connection:
            # A live table has planner statistics; a freshly bulk-loaded one does not yet.
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("ANALYZE payments")
            )
    finally:
        engine.dispose()
    return [(str(row["id"]), str(row["stripe_payment_intent_id"])) for row in rows]


def _seed_subscriptions(database_url: str, count: int) -> list[tuple[str, str]]:
    """`count` users with a Customer and an incomplete subscription: (customer, subscription)."""
    now = datetime.now(UTC)
    users, customers, subscriptions = [], [], []
    for index in range(count):
        user_id = uuid.uuid4()
        users.append(
            {
                "id": user_id,
                "email": f"bench-billing-{index}@example.com",
                "password_hash": "x",
                "role": "user",
                "disabled": False,
                "created_at": now,
            }
        )
        customer = f"cus_bench_{index:08d}"
        customers.append({"user_id": user_id, "stripe_customer_id": customer, "created_at": now})
        subscriptions.append(
            {
                "id": f"sub_bench_{index:08d}",
                "user_id": user_id,
                "stripe_customer_id": customer,
                "status": "incomplete",
                "stripe_price_id": "price_team_monthly",
                "currency": "usd",
                "unit_amount": AMOUNT,
                "interval": "month",
                "interval_count": 1,
                "quantity": 1,
                "cancel_at_period_end": False,
                "stripe_created_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
    engine = create_engine(_sync(database_url))
    try:
        with engine.begin() as connection:
            connection.execute(insert(metadata.tables["users"]), users)
            connection.execute(insert(metadata.tables["billing_customers"]), customers)
            connection.execute(insert(metadata.tables["subscriptions"]), subscriptions)
        with engine.connect() as connection:
            autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("users", "billing_customers", "subscriptions"):
                autocommit.execute(text(f"ANALYZE {table}"))
    finally:
        engine.dispose()
    return [(str(row["stripe_customer_id"]), str(row["id"])) for row in subscriptions]


def _subscription_updated_event(customer: str, subscription: str) -> str:
    now = int(time.time())
    data = {
        "id": subscription,
        "object": "subscription",
        "customer": customer,
        "status": "active",
        "created": now,
        "cancel_at_period_end": False,
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{subscription}",
                    "quantity": 1,
                    "current_period_end": now + 30 * 86_400,
                    "price": {
                        "id": "price_team_monthly",
                        "currency": "usd",
                        "unit_amount": AMOUNT,
                        "recurring": {"interval": "month", "interval_count": 1},
                    },
                }
            ],
        },
    }
    event = {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "created": now,
        "type": "customer.subscription.updated",
        "data": {"object": data},
    }
    return json.dumps(event)


def _succeeded_event(payment_id: str, intent_id: str) -> str:
    intent = json.loads(PAYMENT_INTENT_EXAMPLE.read_text())
    intent.update(
        id=intent_id, amount=AMOUNT, status="succeeded", metadata={"payment_id": payment_id}
    )
    event = {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2025-10-29",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "payment_intent.succeeded",
        "data": {"object": intent},
    }
    return json.dumps(event)


def _signed(body: str) -> str:
    header: str = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET)
    return header


@contextmanager
def _deliveries_file(bodies: list[str]) -> Iterator[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as handle:
        for body in bodies:
            handle.write(f"{_signed(body)}\t{body}\n")
    try:
        yield handle.name
    finally:
        os.unlink(handle.name)


def _load_unique(
    name: str, url: str, deliveries: str, *, connections: int = CONNECTIONS, skip: int = 0
) -> Result:
    """wrk with the Lua script above; same output parsing as benchmarks.harness.load."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA_SCRIPT)
    try:
        output = subprocess.run(
            [require_wrk(), "-t1", f"-c{connections}", f"-d{DURATION_SECONDS}s", "--latency",
             "-s", script.name, url, "--", deliveries, str(skip)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)", output, re.MULTILINE)
    p99_ms = (
        float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
        if p99
        else float("nan")
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return Result(name, rps, p99_ms, int(non_2xx.group(1)) if non_2xx else 0)


def _counts(database_url: str) -> tuple[int, int]:
    engine = create_engine(_sync(database_url))
    try:
        with engine.connect() as connection:
            events = connection.scalar(select(func.count()).select_from(StripeEvent))
            succeeded = connection.scalar(
                select(func.count()).select_from(Payment).where(col(Payment.status) == "succeeded")
            )
    finally:
        engine.dispose()
    return int(events or 0), int(succeeded or 0)


def _truncate_events(database_url: str) -> None:
    engine = create_engine(_sync(database_url))
    try:
        with engine.begin() as connection:
            connection.execute(delete(StripeEvent))
    finally:
        engine.dispose()


def _bench_slipway(database_url: str) -> list[Result]:
    payments = _seed_payments(database_url, EVENT_COUNT)
    bodies = [_succeeded_event(payment_id, intent_id) for payment_id, intent_id in payments]
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "REDIS_URL": "",
        "STRIPE_SECRET_KEY": "sk_test_benchmark",
        "STRIPE_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        # Never called by the webhook; a closed port makes any accidental call fail fast.
        "STRIPE_API_BASE": "http://127.0.0.1:9",
    }
    results = []
    with serve("api.main:app", env, ready_path="/healthz") as url, _deliveries_file(bodies) as tsv:
        # The app's own floor: the whole middleware stack, no database.
        results.append(load("slipway GET /healthz", url + "/healthz"))
        unique = _load_unique(NEW_EVENTS, url + "/v1/webhooks/stripe", tsv)
        time.sleep(1)  # requests in flight when wrk stopped still commit
        events, succeeded = _counts(database_url)
        requests = round(unique.requests_per_second * DURATION_SECONDS)
        print(
            f"\nnew events: ~{requests} deliveries, {events} events stored, {succeeded} payments "
            f"moved to succeeded"
            + (" (the rest replayed as duplicates)" if requests > EVENT_COUNT else "")
        )
        results.append(unique)
        # Latency when the worker is not saturated (32 connections queue behind one process).
        results.append(
            _load_unique(
                "slipway webhook, new events, 2 connections",
                url + "/v1/webhooks/stripe",
                tsv,
                connections=2,
                skip=events + 100,  # past every delivery the first run may have sent
            )
        )
        subscriptions = _seed_subscriptions(database_url, BILLING_EVENT_COUNT)
        updates = [_subscription_updated_event(c, s) for c, s in subscriptions]
        with _deliveries_file(updates) as billing_tsv:
            results.append(
                _load_unique(
                    "slipway webhook, subscription updates (PostgreSQL)",
                    url + "/v1/webhooks/stripe",
                    billing_tsv,
                )
            )
        duplicate = bodies[0]
        results.append(
            load(
                "slipway webhook, duplicate event (PostgreSQL)",
                url + "/v1/webhooks/stripe",
                method="POST",
                body=duplicate,
                headers={
                    "Content-Type": "application/json",
                    "Stripe-Signature": _signed(duplicate),
                },
            )
        )
    return results


def main() -> list[Goal]:
    results: list[Result] = []
    with serve("benchmarks.bare_app:app") as url:
        results.append(load("bare FastAPI hello", url + "/hello"))
    postgres_url = _scratch_postgres()
    if postgres_url is None:
        print("PostgreSQL at TEST_DATABASE_URL is unreachable: the webhook rows are skipped")
        print_table("Stripe webhooks: throughput against a bare FastAPI app", results)
        return []
    try:
        _migrate(postgres_url)
        bodies = [
            _succeeded_event(str(uuid.uuid4()), f"pi_baseline_{index}")
            for index in range(EVENT_COUNT)
        ]
        env = {"STRIPE_WEBHOOK_SECRETS": WEBHOOK_SECRET, "DATABASE_URL": postgres_url}
        with serve("benchmarks.payments_hmac_app:app", env) as url, _deliveries_file(bodies) as tsv:
            results.append(
                _load_unique("bare FastAPI: signature check only", url + "/v1/webhooks/stripe", tsv)
            )
            results.append(
                _load_unique(
                    "bare FastAPI: signature + INSERT event (PostgreSQL)", url + "/store", tsv
                )
            )
        _truncate_events(postgres_url)
        results += _bench_slipway(postgres_url)
    finally:
        _drop_postgres(postgres_url)
    print_table("Stripe webhooks: throughput against a bare FastAPI app", results)
    bare = results[0].requests_per_second
    new_events = next(r.requests_per_second for r in results if r.name == NEW_EVENTS)
    ratio = new_events / bare
    print(f"new events: {ratio:.3f} x the bare hello (goal >= {NEW_EVENTS_GOAL} x: 2 x 0.038 x)")
    return [Goal("Stripe webhook, new events vs bare", ratio, NEW_EVENTS_GOAL)]


if __name__ == "__main__":
    main()
