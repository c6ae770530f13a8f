"""Which policy limits a request: the route it will reach, found before routing runs.

The table is built from the app's routes at their full templates, however deeply routers
are included: FastAPI 0.150 no longer flattens included routers, and the `scope["route"]`
it sets is the inner route with its router-relative path (`/{payment_id}`), the trap in
which other limiters silently stop applying (or apply the wrong limit) to included routers.
`fastapi.routing.iter_route_contexts` yields every route with its effective template and
dependencies, and the table matches them in the router's own order.

A route "requires a bearer token" when any dependency in its tree is a FastAPI security
scheme (OAuth2PasswordBearer, HTTPBearer, ...), which is how CurrentUser/AdminUser work.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.security.base import SecurityBase
from starlette.routing import compile_path
from starlette.types import Scope

from api.ratelimit.policies import Policy, PolicySet

logger = logging.getLogger("api.ratelimit")

# Plans of matched routes are kept for the next request by (method, path), oldest dropped
# first. Only paths of a sane length are kept and never unmatched ones (404s, probes), so the
# cache stays within its byte budget whatever clients send; anything else is resolved anew.
_MAX_CACHED_PATH = 256
_PLAN_ENTRY_BYTES = _MAX_CACHED_PATH + 256  # the path, the key tuple, the dict's share
_PLAN_CACHE_BYTES = 4 * 1024 * 1024
_PLAN_CACHE_ENTRIES = _PLAN_CACHE_BYTES // _PLAN_ENTRY_BYTES


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The policy for one request (None: exempt), its companions, and the route template."""

    policy: Policy | None
    template: str | None
    companions: tuple[Policy, ...] = ()


@dataclass(frozen=True, slots=True)
class _Route:
    regex: re.Pattern[str]
    methods: frozenset[str] | None
    template: str
    requires_bearer: bool


def _route_contexts(app: FastAPI) -> Iterable[Any]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.150 flattened included routers into app.routes.
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def _dependency_calls(dependant: Any, seen: set[int] | None = None) -> Iterator[Any]:
    seen = set() if seen is None else seen
    for sub in getattr(dependant, "dependencies", ()) or ():
        if id(sub) in seen:
            continue
        seen.add(id(sub))
        yield getattr(sub, "call", None)
        yield from _dependency_calls(sub, seen)


def requires_bearer(dependant: Any) -> bool:
    return any(isinstance(call, SecurityBase) for call in _dependency_calls(dependant))


def _build_routes(app: FastAPI) -> list[_Route]:
    routes: list[_Route] = []
    for context in _route_contexts(app):
        path = getattr(context, "path", None)
        template = getattr(context, "path_format", None)
        if not isinstance(path, str) or not isinstance(template, str):
            continue
        methods = getattr(context, "methods", None)
        # Every Starlette/FastAPI route (mounts included) carries the regex routing uses.
        regex = getattr(context, "path_regex", None)
        if not isinstance(regex, re.Pattern):
            regex = compile_path(path)[0]
        dependant = getattr(context, "dependant", None)
        routes.append(
            _Route(
                regex=regex,
                methods=frozenset(methods) if methods else None,
                template=template,
                requires_bearer=dependant is not None and requires_bearer(dependant),
            )
        )
    return routes


def _route_path(scope: Scope) -> str:
    """The path routing sees (without the root path), as Starlette computes it."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


class RouteTable:
    def __init__(self, app: FastAPI, policies: PolicySet) -> None:
        self._policies = policies
        self._routes = _build_routes(app)
        self._plans: dict[tuple[str, str], RoutePlan] = {}
        self._warn_about_unused_entries()

    def plan_for(self, scope: Scope) -> RoutePlan:
        method: str = scope["method"]
        path = _route_path(scope)
        cache_key = (method, path)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = self._resolve(method, path)
            if plan.template is not None and len(path) <= _MAX_CACHED_PATH:
                if len(self._plans) >= _PLAN_CACHE_ENTRIES:
                    del self._plans[next(iter(self._plans))]
                self._plans[cache_key] = plan
        return plan

    def _resolve(self, method: str, path: str) -> RoutePlan:
        for route in self._routes:
            if (route.methods is None or method in route.methods) and route.regex.match(path):
                policy = self._policies.policy_for(
                    method, route.template, requires_bearer=route.requires_bearer
                )
                companions = self._policies.companions_of(policy)
                return RoutePlan(policy=policy, template=route.template, companions=companions)
        # No route: a 404 or 405 is coming. Exempt prefixes still apply to the raw path;
        # anything else counts as anonymous, so probing unknown paths is limited too.
        policy = self._policies.policy_for(method, path, requires_bearer=False)
        return RoutePlan(
            policy=policy, template=None, companions=self._policies.companions_of(policy)
        )

    def _warn_about_unused_entries(self) -> None:
        templates = [(route.methods or frozenset(), route.template) for route in self._routes]
        for policy in self._policies.policies.values():
            for pattern in policy.routes:
                if not any(
                    pattern.matches(method, template)
                    for methods, template in templates
                    for method in (methods or {pattern.method or "GET"})
                ):
                    logger.warning(
                        "rate-limit route entry matches no route",
                        extra={"policy": policy.name, "route": pattern.text},
                    )
