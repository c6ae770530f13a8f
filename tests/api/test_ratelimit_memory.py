"""A flood of distinct oversized credentials and URLs cannot grow a worker's memory.

Regression test for an outside probe's finding: the limiter kept every distinct bearer string
whole as a dict key (up to 10,000, refused ones included) and every distinct path in its
route-plan cache, so 1,000 one-megabyte tokens took a worker from 155 MB to 1.1 GB. Here a
real uvicorn worker (httptools, as deployed) is flooded and its resident set size is read
from /proc before and after.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import GENEROUS_RATE_LIMITS_FILE, TEST_JWT_PRIVATE_KEY
from tests.live_server import serve_api

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

TOKENS = 100
TOKEN_BYTES = 128 * 1024  # 13 MB of distinct tokens in all
PATHS = 300
PATH_BYTES = 32 * 1024  # 10 MB of distinct paths in all
CONCURRENCY = 8
# Far below what the flood sent (main grew by 20 MiB, this code by 0); allocator slack fits.
MAX_GROWTH_BYTES = 6 * 1024 * 1024


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _flood(url: str) -> list[int]:
    statuses: list[int] = []
    queue: asyncio.Queue[tuple[str, dict[str, str]]] = asyncio.Queue()
    for _ in range(TOKENS):
        token = secrets.token_urlsafe(TOKEN_BYTES)[:TOKEN_BYTES]
        queue.put_nowait(("/v1/users/me", {"Authorization": f"Bearer {token}"}))
    for index in range(PATHS):
        junk = secrets.token_hex(PATH_BYTES // 2)
        # Matched (an authenticated template with an id) and unmatched paths alike.
        path = f"/v1/payments/{junk}" if index % 2 else f"/v1/nothing-here/{junk}"
        queue.put_nowait((path, {}))

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            path, headers = queue.get_nowait()
            statuses.append((await client.get(path, headers=headers)).status_code)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return statuses


async def test_a_flood_of_distinct_credentials_and_urls_keeps_memory_bounded(
    tmp_path: Path,
) -> None:
    environment = {
        "APP_ENV": "test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'memory.db'}",
        "JWT_PRIVATE_KEYS": TEST_JWT_PRIVATE_KEY,
        "RATE_LIMITS_FILE": str(GENEROUS_RATE_LIMITS_FILE),
        # Payments configured (never reached), so /v1/payments/{id} answers 401 like the rest.
        "STRIPE_SECRET_KEY": "sk_test_memory",
        "STRIPE_WEBHOOK_SECRETS": "whsec_memory",
        "STRIPE_API_BASE": "http://127.0.0.1:9",
    }
    with serve_api(environment, tmp_path / "uvicorn.log") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            for _ in range(50):  # warm up: imports, first-use caches, the allocator's arenas
                await client.get("/v1/users/me", headers={"Authorization": "Bearer x"})
                await client.get("/v1/payments/warm-up")
        before = _rss_bytes(server.pid)
        statuses = await _flood(server.url)
        growth = _rss_bytes(server.pid) - before
    assert set(statuses) <= {401, 404}, sorted(set(statuses))
    assert growth < MAX_GROWTH_BYTES, f"RSS grew by {growth / 2**20:.0f} MiB"
