"""Pure ASGI middleware recording request count, latency and in-flight requests.

The `route` label is the matched route template, never the raw path, so a million ids
stay one series; requests that match no route share one label.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.observability.metrics import (
    http_request_duration_seconds,
    http_requests_in_progress,
    http_requests_total,
)

UNMATCHED_ROUTE = "unmatched"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Labelled children are cached: `.labels()` costs more than the increment itself.
        # Keys are bounded (methods x route templates x statuses), so the caches are too.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        status = 500
        started = time.perf_counter()

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        http_requests_in_progress.inc()
        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            http_requests_in_progress.dec()
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            histogram = self._histograms.get((method, route))
            if histogram is None:
                histogram = http_request_duration_seconds.labels(method, route)
                self._histograms[(method, route)] = histogram
            histogram.observe(elapsed)
            counter = self._counters.get((method, route, status))
            if counter is None:
                counter = http_requests_total.labels(method, route, str(status))
                self._counters[(method, route, status)] = counter
            counter.inc()
