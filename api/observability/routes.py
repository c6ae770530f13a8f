"""GET /metrics in Prometheus text format, behind METRICS_TOKEN when it is set.

One scrape carries both the process metrics (or, with several workers, those of all workers)
and the series read from the database at that moment (ops_*, and those domains register with
`add_scrape_source`, such as billing's).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from api.db import Database
from api.errors import ProblemError
from api.observability.flow_metrics import FlowRunCollector, FlowRunSnapshot, load_snapshot
from api.settings import Settings

router = APIRouter(include_in_schema=False)
logger = logging.getLogger(__name__)

# A scrape must answer even when the database is slow: ops series are then left out.
FLOW_SNAPSHOT_TIMEOUT_SECONDS = 3.0


class _ProcessRegistry:
    """The default registry as one collector of a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def _check_token(request: Request, settings: Settings) -> None:
    if settings.metrics_token is None:
        return
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    # compare_digest on bytes runs in constant time for equal lengths; the scheme is public.
    valid = scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected)
    if not valid:
        raise ProblemError(
            401,
            "a valid metrics token is required",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


async def _flow_snapshot(database: Database) -> FlowRunSnapshot | None:
    try:
        async with asyncio.timeout(FLOW_SNAPSHOT_TIMEOUT_SECONDS):
            async with database.sessions() as session:
                return await load_snapshot(session)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        logger.warning("ops flow metrics unavailable: %s", type(exc).__name__)
        return None


# A domain that derives series from its tables at scrape time (billing) registers a source: it
# reads what it needs and returns a collector, or a collector without samples on failure.
ScrapeSource = Callable[[AsyncSession], Awaitable[Collector]]
EmptySource = Callable[[], Collector]


def add_scrape_source(app: FastAPI, source: ScrapeSource, empty: EmptySource) -> None:
    app.state.scrape_sources = [*getattr(app.state, "scrape_sources", []), (source, empty)]


async def _scraped(database: Database, source: ScrapeSource, empty: EmptySource) -> Collector:
    try:
        async with asyncio.timeout(FLOW_SNAPSHOT_TIMEOUT_SECONDS):
            async with database.sessions() as session:
                return await source(session)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        logger.warning("derived metrics unavailable: %s", type(exc).__name__)
        return empty()


def _scrape_registry(
    settings: Settings, snapshot: FlowRunSnapshot | None, derived: list[Collector]
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if settings.prometheus_multiproc_dir is not None:
        path = str(settings.prometheus_multiproc_dir)
        MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ProcessRegistry())
    registry.register(FlowRunCollector(snapshot))
    for collector in derived:
        registry.register(collector)
    return registry


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    _check_token(request, settings)
    snapshot = await _flow_snapshot(request.app.state.database)
    database = request.app.state.database
    derived = [
        await _scraped(database, source, empty)
        for source, empty in getattr(request.app.state, "scrape_sources", [])
    ]
    body = generate_latest(_scrape_registry(settings, snapshot, derived))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
