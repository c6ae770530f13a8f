"""Deeply nested JSON is a client error on every operation, never a 500 (docs/api.md).

Regression test for an outside probe's finding: `[[[[...]]]]` made the login limiter's parser
raise RecursionError (not a ValueError), which answered 500, skipped the limit and logged a
traceback per request. The Stripe webhook's parser had the same flaw behind its signature.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from tests.api.payments_support import payments_settings, signature_header
from tests.conftest import AppHarness

DEPTHS = (65, 990, 50_000)


def _nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def _nested_object(depth: int) -> str:
    return '{"email":' * depth + '"x"' + "}" * depth


@pytest_asyncio.fixture
async def client(app_harness: AppHarness, sqlite_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # Stripe is configured (never called): the webhook parses what it has verified.
    app = await app_harness.start(payments_settings(sqlite_url, "http://127.0.0.1:9"))
    async with AppHarness.client(app) as http:
        yield http
    await app.state.database.dispose()


def _json_operations(app: FastAPI) -> list[tuple[str, str]]:
    operations = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                operations.append((method.upper(), path.replace("{payment_id}", "1")))
    return operations


def _assert_client_error(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("shape", [_nested_list, _nested_object])
async def test_nested_bodies_are_client_errors_everywhere(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, shape: Any
) -> None:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    operations = _json_operations(transport.app)  # type: ignore[arg-type]
    assert ("POST", "/v1/auth/login") in operations
    caplog.set_level(logging.WARNING)
    for depth in DEPTHS:
        body = shape(depth)
        for method, path in operations:
            response = await client.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
            _assert_client_error(response)
        form = await client.post(
            "/v1/auth/token",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        _assert_client_error(form)
        signed = {"Content-Type": "application/json", "Stripe-Signature": signature_header(body)}
        webhook = await client.post("/v1/webhooks/stripe", content=body, headers=signed)
        _assert_client_error(webhook)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_signed_event_nested_inside_its_object_is_refused(
    client: httpx.AsyncClient,
) -> None:
    """Valid envelope, an object nested past the cap: 400 malformed, nothing stored."""
    event = {
        "id": "evt_deep",
        "type": "payment_intent.succeeded",
        "created": 1_700_000_000,
        "data": {"object": json.loads(_nested_object(100))},
    }
    payload = json.dumps(event)
    response = await client.post(
        "/v1/webhooks/stripe",
        content=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature_header(payload)},
    )
    _assert_client_error(response)
    assert response.json()["type"].endswith("/malformed-event")
