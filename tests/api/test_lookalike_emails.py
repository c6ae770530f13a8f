"""Look-alike addresses do not register as separate accounts.

Regression test for an outside probe's finding: an address whose local part mixes scripts
(a Cyrillic U+0430 in place of the Latin a) registered as a second account that reads the
same as the first on every screen. Single-script addresses in any writing system still work.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.api.auth_helpers import STRONG_PASSWORD


def _unique(local: str) -> str:
    return f"{local}@{uuid.uuid4().hex[:10]}.example.com"


async def _register(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post(
        "/v1/auth/register", json={"email": email, "password": STRONG_PASSWORD}
    )


@pytest.mark.parametrize(
    ("spoof", "original"),
    [
        ("\u0430lice", "alice"),  # Cyrillic a, then Latin
        ("alic\u0435", "alice"),  # Cyrillic e at the end
        ("\u03b1lice", "alice"),  # Greek alpha
        ("\uff41lice", "alice"),  # fullwidth a
        ("\U0001d41alice", "alice"),  # mathematical bold a
        ("pay\u0440al", "paypal"),  # Cyrillic er
    ],
)
async def test_mixed_script_local_parts_are_refused(
    client: httpx.AsyncClient, spoof: str, original: str
) -> None:
    domain = f"{uuid.uuid4().hex[:10]}.example.com"
    first = await _register(client, f"{original}@{domain}")
    assert first.status_code == 201, first.text
    response = await _register(client, f"{spoof}@{domain}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", "email"]
    assert "writing systems" in error["msg"]


@pytest.mark.parametrize(
    "local",
    [
        "alice",
        "jos\u00e9",
        "\u0434\u043c\u0438\u0442\u0440\u0438\u0439",
        "\u5c71\u7530\u305f\u308d\u3046",
        "ana.mar\u00eda-2",
    ],
)
async def test_single_script_addresses_register(client: httpx.AsyncClient, local: str) -> None:
    response = await _register(client, _unique(local))
    assert response.status_code == 201, response.text
