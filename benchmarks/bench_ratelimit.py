"""Rate-limit overhead (issue 4): one uvicorn worker each, loaded side by side with wrk.

  bare       FastAPI hello endpoint, no middleware (benchmarks/bare_app.py)
  slowapi    the same endpoint limited by slowapi on Redis
  slipway    GET /v1/prices from create_app: the whole middleware stack, the anonymous policy
             decided on Redis (quota raised out of reach by ratelimit_policies.toml, so every
             request is admitted and pays for a full decision)
  slipway    the same app without REDIS_URL (in-process limiter), for reference

Target: slipway on Redis >= 0.6 x bare. Needs Redis at TEST_REDIS_URL (or REDIS_URL) and wrk.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from benchmarks.harness import Result, load, print_table, serve

HERE = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("REDIS_URL") or os.environ.get(
    "TEST_REDIS_URL", "redis://127.0.0.1:6379/0"
)


def _slipway_env(database_dir: str, redis_url: str | None) -> dict[str, str]:
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{database_dir}/bench.db",
        "RATE_LIMITS_FILE": str(HERE / "ratelimit_policies.toml"),
        "REDIS_URL": redis_url or "",
    }
    return env


def main() -> None:
    results: list[Result] = []
    with serve("benchmarks.bare_app:app") as url:
        results.append(load("bare FastAPI hello", url + "/hello"))
    with serve("benchmarks.ratelimit_slowapi_app:app", {"REDIS_URL": REDIS_URL}) as url:
        results.append(load("slowapi on Redis, hello", url + "/hello"))
    with tempfile.TemporaryDirectory() as database_dir:
        # The prices endpoint touches no database; migrations are not needed to serve it.
        for name, redis_url in (
            ("slipway GET /v1/prices, Redis limiter", REDIS_URL),
            ("slipway GET /v1/prices, in-process limiter", None),
        ):
            env = _slipway_env(database_dir, redis_url)
            env["SLIPWAY_BENCH_RUN"] = uuid.uuid4().hex
            with serve("api.main:app", env, ready_path="/healthz") as url:
                results.append(load(name, url + "/v1/prices"))
    print_table("Rate limiting: throughput against a bare FastAPI app", results)


if __name__ == "__main__":
    main()
