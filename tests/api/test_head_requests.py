"""HEAD on a GET route answers like GET without a body (RFC 9110 section 9.3.2), not 405.

Regression test for an outside probe's finding (HEAD answered 405 everywhere). Served by a
real uvicorn, so the bytes on the wire are checked, not only what the ASGI app sends.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import GENEROUS_RATE_LIMITS_FILE, TEST_JWT_PRIVATE_KEY
from tests.live_server import LiveServer, serve_api


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("head")
    environment = {
        "APP_ENV": "test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'head.db'}",
        "JWT_PRIVATE_KEYS": TEST_JWT_PRIVATE_KEY,
        "RATE_LIMITS_FILE": str(GENEROUS_RATE_LIMITS_FILE),
    }
    with serve_api(environment, directory / "uvicorn.log") as live:
        yield live


def _raw_head(url: str, path: str) -> bytes:
    """Everything the server sends for one HEAD request on a connection it then closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        request = f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        connection.sendall(request.encode())
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("path", ["/healthz", "/.well-known/jwks.json", "/openapi.json"])
def test_head_answers_like_get_without_a_body(server: LiveServer, path: str) -> None:
    get = httpx.get(server.url + path)
    head = httpx.head(server.url + path)
    assert get.status_code == 200
    assert head.status_code == 200
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.content == b""
    raw = _raw_head(server.url, path)
    assert raw.endswith(b"\r\n\r\n"), raw[-200:]  # the headers, and not one byte more


def test_head_is_limited_and_authorised_as_the_get(server: LiveServer) -> None:
    me = httpx.head(server.url + "/v1/users/me")
    assert me.status_code == 401
    assert me.content == b""
    assert "RateLimit" in me.headers
    assert httpx.head(server.url + "/v1/auth/login").status_code == 405  # POST only
