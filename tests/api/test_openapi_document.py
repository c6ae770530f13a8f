"""The OpenAPI document is exact about errors (issue 12): every error response is documented
as problem+json, and the standard ones (400/401/404/413/422/429/503) are added from facts about
each route, so a route added later is covered without declaring anything. The live check of
the whole document against the running API is tests/dast/test_schemathesis.py."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from pydantic import BaseModel

from api.auth.dependencies import CurrentUser
from api.db import SessionDep
from api.main import create_app
from tests.conftest import AppHarness, make_settings

PROBLEM = "application/problem+json"


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


async def test_every_error_response_is_problem_json(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    errors = 0
    for method, path, operation in _operations(document):
        for code, response in operation["responses"].items():
            if int(code) >= 400:
                errors += 1
                assert list(response["content"]) == [PROBLEM], (method, path, code)
                schema = response["content"][PROBLEM]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}
    assert errors > 0


async def test_standard_errors_follow_from_what_a_route_does(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    responses = {(m, p): set(op["responses"]) for m, p, op in _operations(document)}
    # A public JSON body, rate limited, on the database:
    assert {"400", "413", "422", "429", "503"} <= responses[("POST", "/v1/auth/register")]
    # Bearer-protected with a path id:
    assert {"401", "404", "422", "429"} <= responses[("GET", "/v1/payments/{payment_id}")]
    # Exempt from rate limits, touches nothing:
    assert responses[("GET", "/healthz")] == {"200"}
    assert "429" not in responses[("POST", "/v1/webhooks/stripe")]
    quota = document["paths"]["/v1/prices"]["get"]["responses"]["429"]
    assert "Retry-After" in quota["headers"]


class Widget(BaseModel):
    name: str


async def test_a_route_added_later_is_documented_without_declaring_errors(
    sqlite_url: str,
) -> None:
    app = create_app(make_settings(sqlite_url))

    async def create_widget(
        widget_id: uuid.UUID, body: Widget, session: SessionDep, user: CurrentUser
    ) -> Widget:
        return body

    app.add_api_route("/v1/widgets/{widget_id}", create_widget, methods=["PUT"])
    async with AppHarness.client(app) as http:
        document = (await http.get("/openapi.json")).json()
    operation = document["paths"]["/v1/widgets/{widget_id}"]["put"]
    assert set(operation["responses"]) == {"200", "400", "401", "404", "413", "422", "429", "503"}
    assert all(
        list(response["content"]) == [PROBLEM]
        for code, response in operation["responses"].items()
        if code != "200"
    )


async def test_payment_price_ids_are_the_catalogs_one_time_prices(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    prices = (await client.get("/v1/prices")).json()
    price_id = document["components"]["schemas"]["PaymentCreate"]["properties"]["price_id"]
    one_time = sorted(price["id"] for price in prices if price["type"] == "one_time")
    assert one_time
    assert price_id["enum"] == one_time


async def test_routes_without_the_database_do_not_promise_503(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert "503" not in document["paths"]["/.well-known/jwks.json"]["get"]["responses"]


async def test_no_operation_takes_credentials_in_the_url(client: httpx.AsyncClient) -> None:
    """Tokens, passwords and keys travel in headers or bodies, never in a path or query string,
    where proxies, logs and browser history would keep them (ASVS 3.1.1, 13.1.3)."""
    document = (await client.get("/openapi.json")).json()
    credential = ("token", "password", "secret", "key", "session", "code")
    in_url = [
        (method, path, parameter["name"])
        for method, path, operation in _operations(document)
        for parameter in operation.get("parameters", [])
        if parameter["in"] in ("query", "path")
        and any(word in parameter["name"].lower() for word in credential)
    ]
    # Session ids name a session to end; they grant nothing (other users' are 404).
    assert [entry for entry in in_url if entry[2] != "session_id"] == []
