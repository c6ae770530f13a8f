"""Application factory: `create_app(settings)`; `app` is the instance uvicorn serves."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import health
from api.account.setup import install_account
from api.auth.setup import install_auth
from api.billing.setup import install_billing
from api.db import Database
from api.docs_ui import install_docs
from api.email.setup import install_email
from api.errors import install_problem_handlers
from api.head_requests import HeadAsGetMiddleware
from api.logging_config import configure_logging
from api.middleware import RequestContextMiddleware
from api.observability import routes as metrics_routes
from api.observability.middleware import MetricsMiddleware
from api.openapi_document import install_openapi_document
from api.payments.setup import install_payments
from api.ratelimit import install_rate_limiting
from api.route_index import install_indexed_dispatch
from api.security_headers import SecurityHeadersMiddleware
from api.settings import Settings, get_settings

StartupHook = Callable[[FastAPI], Awaitable[None]]
ReadinessProbe = Callable[[], Awaitable[None]]


@functools.cache  # once per process
def _freeze_long_lived_objects() -> None:
    """Move everything alive after start-up (modules, the app, its routes and models) out of
    the garbage collector's generations. A full collection then no longer walks them: under
    load such collections had stalled the event loop for 40-90 ms every few seconds, the whole
    of the p99 of cheap requests (docs/performance.md)."""
    gc.freeze()


def _lifespan(
    dispose_on_shutdown: bool,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Mangum runs the lifespan on every Lambda invocation: start-up work runs once per
        # process and pools survive between invocations.
        async with app.state.startup_lock:
            if not app.state.started:
                await app.state.database.start()
                for hook in app.state.startup_hooks:
                    await hook(app)
                app.state.started = True
                _freeze_long_lived_objects()
        yield
        if not dispose_on_shutdown:
            # The lifespan ends after every Lambda invocation: finish what it started.
            for hook in app.state.invocation_end_hooks:
                await hook(app)
        else:
            for hook in reversed(app.state.shutdown_hooks):
                await hook(app)
            await app.state.database.dispose()
            app.state.started = False

    return lifespan


def create_app(settings: Settings | None = None, *, dispose_on_shutdown: bool = True) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Slipway API",
        version="0.1.0",
        lifespan=_lifespan(dispose_on_shutdown),
        # install_docs serves /docs from the app's own assets; FastAPI's pages use a CDN.
        docs_url=None,
        redoc_url=None,
        # The app's metrics are Prometheus's (api/observability) and its logs are its own;
        # FastAPI's native OpenTelemetry bridge, unused, still looked up the global providers
        # on every request (6-9 us, 3 % of a GET /v1/prices). Adopting OpenTelemetry means
        # configuring a provider and turning these on.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.database = Database.from_settings(settings)
    app.state.started = False
    app.state.startup_lock = asyncio.Lock()
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    app.state.invocation_end_hooks = []
    app.state.readiness_probes = {}
    # Domain packages refine the OpenAPI document with what only they know (api/openapi_document).
    app.state.openapi_refinements = []

    install_problem_handlers(app)
    install_email(app)
    app.include_router(health.router)
    app.include_router(metrics_routes.router)
    install_auth(app)
    install_account(app)
    install_payments(app)
    install_docs(app)
    install_billing(app)

    # Rate limiting resolves each request's route from the routers included above; its
    # middleware sits inside CORS and metrics (preflights are free, 429s are counted).
    install_rate_limiting(app, settings)
    # Last of the routes and the limiter: the document lists what each of them can answer.
    install_openapi_document(app)
    install_indexed_dispatch(app)
    # Outside the limiter: a HEAD request is limited and routed as the GET it stands for.
    app.add_middleware(HeadAsGetMiddleware)

    # Middleware added last runs first: the request context wraps everything, so even a
    # failure inside the metrics layer is answered with problem+json and a request id.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID"],
        )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestContextMiddleware)
    # Outermost, so that the request context's own last-resort answers carry the headers too.
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.is_deployed)
    return app


_served_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    """`api.main:app`, built on first access so importing `create_app` builds nothing."""
    global _served_app
    if name != "app":
        raise AttributeError(name)
    if _served_app is None:
        configure_logging()
        _served_app = create_app()
    return _served_app
