"""Bad input of every kind gets RFC 9457 problem+json, never a 5xx."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from tests.conftest import AppHarness, make_settings

PROBLEM = "application/problem+json"


class Echo(BaseModel):
    name: str
    count: int


@pytest.fixture(scope="module")
def probe_routes() -> list[tuple[str, object]]:
    async def echo(body: Echo) -> Echo:
        return body

    async def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    return [("/probe/echo", echo), ("/probe/boom", boom)]


@pytest.fixture
async def probe_app(app_harness: AppHarness, sqlite_url: str, probe_routes) -> FastAPI:
    app = await app_harness.start(make_settings(sqlite_url))
    echo, boom = (handler for _, handler in probe_routes)
    app.add_api_route("/probe/echo", echo, methods=["POST"])
    app.add_api_route("/probe/boom", boom, methods=["GET"])
    return app


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert str(body["type"]).startswith("https://slipway.dev/problems/")
    assert body["title"]
    assert "detail" in body
    return body  # type: ignore[no-any-return]


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nope"), 404)


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert_problem(response, 405)
    assert "GET" in response.headers["allow"]


async def test_malformed_json_is_422_problem(probe_app: FastAPI) -> None:
    async with AppHarness.client(probe_app) as http:
        response = await http.post(
            "/probe/echo", content=b'{"name": "x", ', headers={"content-type": "application/json"}
        )
    body = assert_problem(response, 422)
    assert body["errors"]


async def test_validation_errors_do_not_echo_input(probe_app: FastAPI) -> None:
    async with AppHarness.client(probe_app) as http:
        response = await http.post("/probe/echo", json={"name": "hunter2-secret", "count": "x"})
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == ["body", "count"]  # type: ignore[index]
    assert "hunter2-secret" not in response.text


@pytest.mark.parametrize(
    "payload", [b"[]", b"null", b'"text"', b"{}", '{"name": "\u00e9"}'.encode()]
)
async def test_wrong_shapes_are_422(probe_app: FastAPI, payload: bytes) -> None:
    async with AppHarness.client(probe_app) as http:
        response = await http.post(
            "/probe/echo", content=payload, headers={"content-type": "application/json"}
        )
    assert_problem(response, 422)


async def test_body_over_one_mebibyte_is_413(probe_app: FastAPI) -> None:
    big = json.dumps({"name": "x" * (1024 * 1024), "count": 1}).encode()
    async with AppHarness.client(probe_app) as http:
        declared = await http.post(
            "/probe/echo", content=big, headers={"content-type": "application/json"}
        )

        async def chunks():  # no Content-Length: the cap is enforced while reading
            for start in range(0, len(big), 65536):
                yield big[start : start + 65536]

        streamed = await http.post(
            "/probe/echo", content=chunks(), headers={"content-type": "application/json"}
        )
    assert_problem(declared, 413)
    assert_problem(streamed, 413)


async def test_body_at_the_limit_is_accepted(probe_app: FastAPI) -> None:
    body = json.dumps({"name": "x", "count": 1}).encode()
    body = body[:-1] + b" " * (1024 * 1024 - len(body)) + b"}"
    assert len(body) == 1024 * 1024
    async with AppHarness.client(probe_app) as http:
        response = await http.post(
            "/probe/echo", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 200


async def test_unexpected_error_is_500_without_internals(
    probe_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="api.request"):
        async with AppHarness.client(probe_app) as http:
            response = await http.get("/probe/boom", headers={"X-Request-ID": "req-500"})
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert body["detail"] == "an unexpected error occurred"
    assert response.headers["x-request-id"] == "req-500"
    logged = [record for record in caplog.records if record.message == "unhandled error"]
    assert logged
    assert logged[0].exc_info is not None
