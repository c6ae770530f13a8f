"""/metrics: every docs/reference.md#metrics metric with its labels, bounded route labels, the
METRICS_TOKEN guard, and prometheus_client multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from api.observability.catalogue import exported_series
from tests.api.auth_helpers import STRONG_PASSWORD, unique_email
from tests.api.metrics_helpers import families, samples, scrape, value
from tests.conftest import ROOT, AppHarness, delete_all_rows, make_settings

# docs/reference.md#metrics: name -> (type, label names). Dashboards and alerts are built on these.
CONTRACT = {
    "http_requests_total": ("counter", {"method", "route", "status"}),
    "http_request_duration_seconds": ("histogram", {"method", "route"}),
    "http_requests_in_progress": ("gauge", set()),
    "ratelimit_decisions_total": ("counter", {"policy", "decision"}),
    "ratelimit_backend_errors_total": ("counter", set()),
    "auth_logins_total": ("counter", {"result"}),
    "auth_refresh_total": ("counter", {"result"}),
    "payments_created_total": ("counter", {"currency"}),
    "payments_status_transitions_total": ("counter", {"status"}),
    "stripe_webhook_events_total": ("counter", {"type", "result"}),
    "stripe_webhook_processing_seconds": ("histogram", set()),
    "ops_flow_last_success_timestamp_seconds": ("gauge", {"flow"}),
    "ops_flow_runs_total": ("counter", {"flow", "result"}),
    "email_messages_total": ("counter", {"template", "outcome"}),
    "billing_subscriptions": ("gauge", {"status"}),
    "billing_webhook_events_total": ("counter", {"type", "outcome"}),
    "billing_mrr": ("gauge", {"currency"}),
}


def _family_name(name: str, metric_type: str) -> str:
    return name.removesuffix("_total") if metric_type == "counter" else name


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_the_catalogue_has_each_contract_metric_with_its_labels(name: str) -> None:
    metric_type, labels = CONTRACT[name]
    catalogue = exported_series()
    if metric_type == "histogram":
        assert catalogue[f"{name}_bucket"] == {*labels, "le"}
        assert catalogue[f"{name}_count"] == labels
        assert catalogue[f"{name}_sum"] == labels
    else:
        assert catalogue[name] == labels


async def _exercise(client: httpx.AsyncClient) -> None:
    """Drive every producer that runs without outside services."""
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/v1/prices")).status_code == 200
    email = unique_email("metrics")
    credentials = {"email": email, "password": STRONG_PASSWORD}
    assert (await client.post("/v1/auth/register", json=credentials)).status_code == 201
    pair = (await client.post("/v1/auth/login", json=credentials)).json()
    wrong = {"email": email, "password": STRONG_PASSWORD + "-wrong"}
    assert (await client.post("/v1/auth/login", json=wrong)).status_code == 401
    refresh = {"refresh_token": pair["refresh_token"]}
    assert (await client.post("/v1/auth/refresh", json=refresh)).status_code == 200
    assert (await client.post("/v1/auth/refresh", json=refresh)).status_code == 401  # reuse
    unsigned = await client.post("/v1/webhooks/stripe", content=b"{}")
    assert unsigned.status_code == 400


async def test_every_contract_metric_is_on_metrics_after_exercising_the_api(
    app_harness: AppHarness, sqlite_url: str
) -> None:
    settings = make_settings(
        sqlite_url, stripe_secret_key="sk_test_metrics", stripe_webhook_secrets="whsec_metrics"
    )
    app = await app_harness.start(settings)
    try:
        async with AppHarness.client(app) as client:
            await _exercise(client)
            text = await scrape(client)
    finally:
        delete_all_rows(sqlite_url)

    exported = families(text)
    for name, (metric_type, _) in CONTRACT.items():
        assert exported.get(_family_name(name, metric_type)) == metric_type, name

    # Series of the producers exercised above, with the contract's labels.
    get_healthz = {"method": "GET", "route": "/healthz"}
    assert value(text, "http_requests_total", **get_healthz, status="200")
    assert value(text, "http_request_duration_seconds_count", **get_healthz)
    assert value(text, "http_request_duration_seconds_bucket", **get_healthz, le="+Inf")
    assert value(text, "http_requests_in_progress") == 1.0  # the scrape itself
    assert value(text, "ratelimit_decisions_total", policy="anonymous", decision="allowed")
    assert value(text, "ratelimit_backend_errors_total") is not None
    assert value(text, "auth_logins_total", result="success")
    assert value(text, "auth_logins_total", result="failure")
    assert value(text, "auth_refresh_total", result="rotated")
    assert value(text, "auth_refresh_total", result="reuse_detected")
    invalid = {"type": "unverified", "result": "invalid_signature"}
    assert value(text, "stripe_webhook_events_total", **invalid)
    assert value(text, "stripe_webhook_processing_seconds_count") is not None
    assert value(text, "ops_flow_runs_total", flow="backup", result="success") == 0.0
    # payments_created_total{currency} and payments_status_transitions_total{status} need a
    # Stripe (emulator) round trip: tests/api/test_payments_* assert their values; here their
    # families are exported (above) and the catalogue carries their labels.


async def test_a_thousand_ids_make_one_route_series(
    app_harness: AppHarness, sqlite_url: str
) -> None:
    app = await app_harness.start(make_settings(sqlite_url))
    template = f"/metrics-test-{uuid.uuid4().hex[:8]}/things/{{thing_id}}"

    async def get_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.add_api_route(template, get_thing, methods=["GET"])
    ids = [uuid.uuid4().hex for _ in range(1000)]
    async with AppHarness.client(app) as client:
        for thing_id in ids:
            response = await client.get(template.replace("{thing_id}", thing_id))
            assert response.status_code == 200
        text = await scrape(client)

    prefix = template.split("/things")[0]
    counted = [s for s in samples(text, "http_requests_total") if prefix in s.labels["route"]]
    assert [(s.labels["route"], s.value) for s in counted] == [(template, 1000.0)]
    timed = [
        s
        for s in samples(text, "http_request_duration_seconds_count")
        if prefix in s.labels["route"]
    ]
    assert [(s.labels["route"], s.value) for s in timed] == [(template, 1000.0)]
    assert not any(thing_id in text for thing_id in ids[:50])


async def test_paths_matching_no_route_share_one_label(client: httpx.AsyncClient) -> None:
    before = (
        value(
            await scrape(client),
            "http_requests_total",
            method="GET",
            route="unmatched",
            status="404",
        )
        or 0.0
    )
    paths = [f"/no-such-{uuid.uuid4().hex}/{n}" for n in range(25)]
    for path in paths:
        assert (await client.get(path)).status_code == 404
    text = await scrape(client)
    after = value(text, "http_requests_total", method="GET", route="unmatched", status="404")
    assert after == before + 25
    assert not any(path in text for path in paths)


async def test_unknown_methods_share_one_label(client: httpx.AsyncClient) -> None:
    await client.request("PURGE", "/healthz")
    text = await scrape(client)
    methods = {s.labels["method"] for s in samples(text, "http_requests_total")}
    assert "PURGE" not in methods
    assert "OTHER" in methods


@pytest.fixture
async def guarded(app_harness: AppHarness, sqlite_url: str) -> httpx.AsyncClient:
    app = await app_harness.start(make_settings(sqlite_url, metrics_token="t" * 40))
    return AppHarness.client(app)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer " + "x" * 40, "Bearer " + "t" * 39, "Basic " + "t" * 40, "t" * 40],
)
async def test_metrics_token_is_required_when_set(
    guarded: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with guarded as client:
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "t" * 40 not in response.text
    assert "http_requests_total" not in response.text


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
async def test_the_right_token_opens_metrics(guarded: httpx.AsyncClient, scheme: str) -> None:
    async with guarded as client:
        text = await scrape(client, Authorization=f"{scheme} {'t' * 40}")
    assert families(text)["http_requests"] == "counter"


# Another worker process that has answered two health checks. It needs prometheus_client only,
# which keeps this test quick: the full app is imported once, by the scraped worker below.
_OTHER_WORKER = """
from api.observability.metrics import http_requests_total
http_requests_total.labels("GET", "/healthz", "200").inc(2)
"""

_SCRAPED_WORKER = """
import asyncio, sys
import httpx
from api.main import create_app
from api.settings import Settings

async def main() -> None:
    app = create_app(Settings(app_env="test", database_url=sys.argv[1]))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
            for _ in range(2):
                assert (await client.get("/healthz")).status_code == 200
            print((await client.get("/metrics")).text)

asyncio.run(main())
"""


def test_multiprocess_mode_adds_up_every_worker(sqlite_url: str, tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, a scrape of any worker reports all workers' requests."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}

    def run(script: str) -> str:
        return subprocess.run(
            [sys.executable, "-c", script, sqlite_url],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout

    run(_OTHER_WORKER)
    text = run(_SCRAPED_WORKER)
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(text, "http_requests_total", **healthz) == 4.0
    assert value(text, "ops_flow_runs_total", flow="backup", result="success") == 0.0
    # Known outcomes are exported at 0 before they first happen (increase() needs the 0).
    assert value(text, "auth_refresh_total", result="reuse_detected") == 0.0
    assert value(text, "auth_logins_total", result="failure") == 0.0
    assert list(tmp_path.glob("counter_*.db"))
