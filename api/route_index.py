"""Which route a request reaches, found once per (method, path) and shared by whoever asks.

FastAPI 0.150 keeps included routers nested: to route one request it walks every router
before the right one, matching each candidate's regex, and then walks the chosen router a
second time to handle it. With this app's dozen routers that was a third of the CPU of a
cheap request such as `GET /v1/prices` (docs/performance.md). The index lists the same
routes flattened in routing order (`fastapi.routing.iter_route_contexts`, FastAPI's own
iteration) and remembers the outcome per method and path, so routing becomes a dict lookup:

- the rate limiter asks it which route (template, security) a request is about to reach;
- `IndexedDispatch`, installed in front of the app's router, sends a request whose first
  full match is an API route straight to it, exactly as FastAPI's router would have after
  matching. Anything else (404, 405, redirects, plain Starlette routes, a request traced by
  FastAPI's own telemetry) goes through FastAPI's router unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import (
    _FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY,
    _FASTAPI_SCOPE_KEY,
    APIRoute,
    iter_route_contexts,
)
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

# Outcomes are kept for the next request by (method, path), oldest dropped first. Only paths
# of a sane length are kept and never unmatched ones (404s, probes), so the cache stays
# within its byte budget whatever clients send; anything else is resolved anew.
_MAX_CACHED_PATH = 256
_ENTRY_BYTES = _MAX_CACHED_PATH + 512  # the path, the key tuple, path parameters, the dict
_CACHE_BYTES = 4 * 1024 * 1024
_CACHE_ENTRIES = _CACHE_BYTES // _ENTRY_BYTES

# FastAPI keeps the route it selected under scope[_FASTAPI_SCOPE_KEY], where APIRoute.handle
# reads it to run the endpoint with the dependencies its including routers added (a router's
# auth, say). Those keys are imported from fastapi.routing rather than copied, so that a
# release renaming them fails at start-up instead of silently dropping such dependencies.
# A request FastAPI's own telemetry traces goes through its router, which names the span.
_TELEMETRY_SCOPE_KEY = "fastapi.telemetry"


@dataclass(frozen=True, slots=True, eq=False)
class IndexedRoute:
    """One route at its full template, in the order routing tries it."""

    template: str
    methods: frozenset[str] | None
    regex: re.Pattern[str]
    param_convertors: dict[str, Any]
    dependant: Any
    # The API route and the context FastAPI selects it with (None for a route of the app
    # itself); api_route is None for what only FastAPI's router may handle (plain Starlette
    # routes, mounts, host routes).
    api_route: APIRoute | None
    effective_context: Any


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: IndexedRoute
    path_params: dict[str, Any]


def route_path(scope: Scope) -> str:
    """The path routing sees (without the root path), as Starlette computes it."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


def _indexed(context: Any) -> IndexedRoute | None:
    path = getattr(context, "path", None)
    template = getattr(context, "path_format", None)
    if not isinstance(path, str) or not isinstance(template, str):
        return None
    # Every Starlette/FastAPI route (mounts included) carries the regex routing uses.
    regex = getattr(context, "path_regex", None)
    convertors = getattr(context, "param_convertors", None)
    if not isinstance(regex, re.Pattern) or not isinstance(convertors, dict):
        regex, _, convertors = compile_path(path)
    methods = getattr(context, "methods", None)
    effective = getattr(context, "_route_context", None)
    original = getattr(context, "original_route", None)
    # An API route added to the app itself has no effective context: it runs as declared.
    dispatchable = isinstance(original, APIRoute) and (
        effective is None
        or (
            getattr(effective, "starlette_route", None) is None
            and getattr(effective, "app", None) is not None
        )
    )
    return IndexedRoute(
        template=template,
        methods=frozenset(methods) if methods else None,
        regex=regex,
        param_convertors=convertors,
        dependant=getattr(context, "dependant", None),
        api_route=original if dispatchable else None,
        effective_context=effective if dispatchable else None,
    )


class RouteIndex:
    def __init__(self, routes: Iterable[IndexedRoute]) -> None:
        self.routes = tuple(routes)
        self._matches: dict[tuple[str, str], RouteMatch] = {}

    @classmethod
    def of(cls, app: FastAPI) -> RouteIndex:
        """The app's index, built once its routes are all included (at the first request)."""
        index: RouteIndex | None = getattr(app.state, "route_index", None)
        if index is None:
            contexts = iter_route_contexts(app.routes)
            index = cls(route for route in map(_indexed, contexts) if route is not None)
            app.state.route_index = index
        return index

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The first route that takes this method and path (a full match), or None."""
        key = (method, path)
        found = self._matches.get(key)
        if found is None:
            found = self._resolve(method, path)
            if found is not None and len(path) <= _MAX_CACHED_PATH:
                if len(self._matches) >= _CACHE_ENTRIES:
                    del self._matches[next(iter(self._matches))]
                self._matches[key] = found
        return found

    def _resolve(self, method: str, path: str) -> RouteMatch | None:
        for route in self.routes:
            if route.methods is not None and method not in route.methods:
                continue
            matched = route.regex.match(path)
            if matched is None:
                continue
            convertors = route.param_convertors
            params = {name: convertors[name].convert(v) for name, v in matched.groupdict().items()}
            return RouteMatch(route, params)
        return None


class IndexedDispatch:
    """In front of the app's router: an API route found in the index is handled directly."""

    def __init__(self, app: FastAPI, router_app: ASGIApp) -> None:
        self._app = app
        self._router_app = router_app
        self._index: RouteIndex | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _TELEMETRY_SCOPE_KEY not in scope:
            index = self._index or self._bind()
            found = index.match(scope["method"], route_path(scope))
            if found is not None and found.route.api_route is not None:
                await self._handle(found, scope, receive, send)
                return
        await self._router_app(scope, receive, send)

    def _bind(self) -> RouteIndex:
        self._index = RouteIndex.of(self._app)
        return self._index

    async def _handle(self, found: RouteMatch, scope: Scope, receive: Receive, send: Send) -> None:
        # What FastAPI's router leaves in the scope when it selects this route.
        route = found.route
        api_route = route.api_route
        assert api_route is not None
        scope.setdefault("router", self._app.router)
        scope["endpoint"] = api_route.endpoint
        scope["path_params"] = {**scope.get("path_params", {}), **found.path_params}
        scope["route"] = api_route
        if route.effective_context is not None:
            fastapi_scope = scope.setdefault(_FASTAPI_SCOPE_KEY, {})
            fastapi_scope[_FASTAPI_EFFECTIVE_ROUTE_CONTEXT_KEY] = route.effective_context
        await api_route.handle(scope, receive, send)


def install_indexed_dispatch(app: FastAPI) -> None:
    """Route the app's requests through the index (call once every router is included)."""
    router = app.router
    router.middleware_stack = IndexedDispatch(app, router.middleware_stack)
