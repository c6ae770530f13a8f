"""Which policy limits a request: the route it will reach, found before routing runs.

The table is built from the app's routes at their full templates, however deeply routers
are included: FastAPI 0.150 no longer flattens included routers, and the `scope["route"]`
it sets is the inner route with its router-relative path (`/{payment_id}`), the trap in
which other limiters silently stop applying (or apply the wrong limit) to included routers.
The app's `RouteIndex` (api/route_index.py) lists every route with its effective template and
dependencies in the router's own order and finds the one a request reaches; the table adds
the policy, worked out once per route and method.

A route "requires a bearer token" when any dependency in its tree is a FastAPI security
scheme (OAuth2PasswordBearer, HTTPBearer, ...), which is how CurrentUser/AdminUser work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.security.base import SecurityBase
from starlette.types import Scope

from api.ratelimit.policies import Policy, PolicySet
from api.route_index import IndexedRoute, RouteIndex, route_path

logger = logging.getLogger("api.ratelimit")


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The policy for one request (None: exempt), its companions, and the route template."""

    policy: Policy | None
    template: str | None
    companions: tuple[Policy, ...] = ()


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


class RouteTable:
    """Each route's plan, worked out once; the route itself comes from the app's RouteIndex."""

    def __init__(self, app: FastAPI, policies: PolicySet) -> None:
        self._policies = policies
        self._index = RouteIndex.of(app)
        # By route and method, for routes that name their methods: bounded by the app's routes
        # times those methods, whatever methods clients make up.
        self._plans: dict[tuple[IndexedRoute, str], RoutePlan] = {}
        self._warn_about_unused_entries()

    def plan_for(self, scope: Scope) -> RoutePlan:
        method: str = scope["method"]
        path = route_path(scope)
        found = self._index.match(method, path)
        if found is not None:
            plan = self._plans.get((found.route, method))
            if plan is None:
                plan = self._plan(found.route, method)
                if found.route.methods is not None:
                    self._plans[(found.route, method)] = plan
            return plan
        # No route: a 404 or 405 is coming. Exempt prefixes still apply to the raw path;
        # anything else counts as anonymous, so probing unknown paths is limited too.
        policy = self._policies.policy_for(method, path, requires_bearer=False)
        return RoutePlan(
            policy=policy, template=None, companions=self._policies.companions_of(policy)
        )

    def _plan(self, route: IndexedRoute, method: str) -> RoutePlan:
        bearer = route.dependant is not None and requires_bearer(route.dependant)
        policy = self._policies.policy_for(method, route.template, requires_bearer=bearer)
        return RoutePlan(
            policy=policy, template=route.template, companions=self._policies.companions_of(policy)
        )

    def _warn_about_unused_entries(self) -> None:
        templates = [(route.methods or frozenset(), route.template) for route in self._index.routes]
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
