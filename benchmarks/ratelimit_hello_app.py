"""The bare hello endpoint behind our rate limiter (anonymous policy; Redis when REDIS_URL is
set, a Redis Cluster when REDIS_CLUSTER=true too, else in-process): the like-for-like
comparison with slowapi on the same endpoint."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import ip_network
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import generate_latest
from starlette.responses import Response

from api.ratelimit import RateLimiter, RateLimitMiddleware
from api.ratelimit.policies import load_policy_set

POLICY_FILE = Path(__file__).resolve().with_name("ratelimit_policies.toml")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await app.state.rate_limiter.start()
    yield
    await app.state.rate_limiter.close()


app = FastAPI(lifespan=lifespan)
app.state.rate_limiter = RateLimiter(
    load_policy_set(POLICY_FILE),
    redis_url=os.environ.get("REDIS_URL") or None,
    redis_cluster=os.environ.get("REDIS_CLUSTER", "").lower() == "true",
    # Set by the many-clients rows: wrk sends every request from another X-Forwarded-For.
    trusted_proxies=[
        ip_network(net) for net in os.environ.get("TRUSTED_PROXIES", "").split(",") if net
    ],
    key_prefix="bench-slipway:",
)
app.add_middleware(RateLimitMiddleware)


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/metrics")
async def metrics() -> Response:
    """Exempt: lets the benchmark read how many decisions fell back to in-process."""
    return Response(generate_latest(), media_type="text/plain")
