"""Defects the DAST run (tests/dast) found, each reproduced here in-process: a malformed
Content-Type on the endpoints whose body the rate limiter reads (500), and 405s naming only
some of the methods in Allow."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_problem_details import assert_problem


@pytest.mark.parametrize("path", ["/v1/auth/login", "/v1/auth/token", "/v1/auth/register"])
@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "application/x-www-form-urlencoded"],
)
async def test_a_body_the_form_parser_refuses_is_a_client_error(
    client: httpx.AsyncClient, path: str, content_type: str
) -> None:
    response = await client.post(
        path, content=b'{"email": "", "password": "x"}', headers={"content-type": content_type}
    )
    assert 400 <= response.status_code < 500, response.text
    assert_problem(response, response.status_code)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/payments", "GET, POST"),
        ("PATCH", "/v1/auth/sessions", "GET"),
        ("PUT", "/healthz", "GET"),
    ],
)
async def test_405_allow_names_every_method_the_resource_supports(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    """RFC 9110 15.5.6 (found by the DAST run: `PUT /v1/payments` said `Allow: POST`)."""
    response = await client.request(method, path)
    assert_problem(response, 405)
    assert response.headers["allow"] == allowed
