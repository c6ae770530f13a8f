"""GET /metrics in Prometheus text format, behind METRICS_TOKEN when it is set."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.responses import Response

from api.errors import ProblemError
from api.settings import Settings

router = APIRouter(include_in_schema=False)


def _registry(settings: Settings) -> CollectorRegistry:
    if settings.prometheus_multiproc_dir is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def _check_token(request: Request, settings: Settings) -> None:
    if settings.metrics_token is None:
        return
    expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
    presented = request.headers.get("authorization", "").encode()
    if not hmac.compare_digest(presented, expected):
        raise ProblemError(
            401,
            "a valid metrics token is required",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    _check_token(request, settings)
    return Response(generate_latest(_registry(settings)), media_type=CONTENT_TYPE_LATEST)
