"""The bare hello endpoint limited by slowapi on Redis (REDIS_URL): the off-the-shelf baseline.

The limit is far above what the benchmark can reach, so every request is admitted and the
measurement is the limiter's own cost, as for our limiter.
"""

from __future__ import annotations

import os

from fastapi import FastAPI, Request
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

limiter = Limiter(
    key_func=get_remote_address,
    storage_uri=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    key_prefix="bench-slowapi",
)
app = FastAPI()
app.state.limiter = limiter
app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)  # type: ignore[arg-type]


@app.get("/hello")
@limiter.limit("100000000/minute")
async def hello(request: Request) -> dict[str, str]:
    return {"hello": "world"}
