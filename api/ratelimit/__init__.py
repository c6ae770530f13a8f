"""Per-endpoint rate limiting (docs/rate-limits.md): policies from RATE_LIMITS_FILE over the
bundled defaults, GCRA on Redis (one atomic Lua script per round trip, concurrent decisions
coalesced) or in-process, IETF RateLimit headers, 429 problem+json when refused."""

from __future__ import annotations

from fastapi import FastAPI

from api.ratelimit.limiter import RateLimiter
from api.ratelimit.middleware import RateLimitMiddleware
from api.settings import Settings

__all__ = ["RateLimitMiddleware", "RateLimiter", "install_rate_limiting"]


def install_rate_limiting(app: FastAPI, settings: Settings) -> None:
    """Limiter in app.state, the middleware, start/stop hooks and (with Redis) a readiness probe.

    Call before adding CORS so CORS stays outside: preflights are not counted and refusals
    carry CORS headers. The policy file is read here, so a bad file stops start-up.
    """
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    app.add_middleware(RateLimitMiddleware)

    # Hooks read app.state at call time: a test may swap the limiter before start-up.
    async def start(app: FastAPI) -> None:
        await app.state.rate_limiter.start()

    async def stop(app: FastAPI) -> None:
        await app.state.rate_limiter.close()

    app.state.startup_hooks.append(start)
    app.state.shutdown_hooks.append(stop)
    if settings.redis_url:

        async def redis_ready() -> None:
            await app.state.rate_limiter.ping()

        app.state.readiness_probes["redis"] = redis_ready
