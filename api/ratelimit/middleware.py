"""Pure ASGI middleware applying the policy of the route each request is about to reach.

Per request: one dict lookup for the route's policy, the identity (client IP; plus the
verified user or a body field for the policies keyed that way), one decision, and two
headers appended to the response. Refusals are answered here, before any endpoint code
(or database session) runs. Pure ASGI rather than BaseHTTPMiddleware: no extra task and no
response streaming wrapper per request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem_response
from api.ratelimit.gcra import Decision
from api.ratelimit.identity import (
    AmbiguousIdentityError,
    UserIdentity,
    auth_token_verifier,
    body_field,
    read_body,
)
from api.ratelimit.limiter import RateLimiter
from api.ratelimit.policies import Policy
from api.ratelimit.routes import RoutePlan, RouteTable

_POLICY_HEADER = b"ratelimit-policy"
_STATE_HEADER = b"ratelimit"


@dataclass(frozen=True, slots=True)
class _TemplateRoute:
    """Stands in for the route on refused requests, which never reach routing, so that the
    metrics middleware labels the 429 with the route template rather than 'unmatched'."""

    path: str


@dataclass(slots=True)
class _Bound:
    limiter: RateLimiter
    routes: RouteTable
    users: UserIdentity


def _ambiguous(exc: AmbiguousIdentityError) -> Response:
    error = {"loc": ["body", exc.field], "msg": str(exc), "type": "duplicate_field"}
    return problem_response(
        422,
        "the request names its account more than once; send exactly one email or username",
        extra={"errors": [error]},
    )


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._bound: _Bound | None = None

    def _bind(self, scope: Scope) -> _Bound:
        # Bound at the first request, once every router is included and app.state holds
        # the limiter the app was started with (tests may swap it in before that).
        fastapi_app: FastAPI = scope["app"]
        limiter: RateLimiter = fastapi_app.state.rate_limiter
        self._bound = _Bound(
            limiter=limiter,
            routes=RouteTable(fastapi_app, limiter.policies),
            users=UserIdentity(auth_token_verifier(fastapi_app)),
        )
        return self._bound

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bound = self._bound or self._bind(scope)
        plan = bound.routes.plan_for(scope)
        policy = plan.policy
        if policy is None:
            await self.app(scope, receive, send)
            return
        # Endpoints that record where a client came from (auth sessions) read this, so a
        # session behind the load balancer shows the client, not the proxy.
        scope.setdefault("state", {})["client_ip"] = bound.limiter.client_ip.address(scope)
        try:
            identity, receive = await self._identity(bound, policy, scope, receive)
        except AmbiguousIdentityError as exc:
            await _ambiguous(exc)(scope, receive, send)
            return
        if plan.companions:
            decided = await self._decide_with_companions(bound, plan, policy, identity, scope)
        else:
            decided = [(policy, await bound.limiter.decide(policy, identity))]
        # Structured Fields lists: one member per policy, the route's own policy first.
        policy_header = b", ".join(policy.policy_header for policy, _ in decided)
        state_header = b", ".join(decision.header(policy) for policy, decision in decided)
        for refused_by, decision in decided:
            if not decision.allowed:
                await self._refuse(
                    scope, receive, send, plan, refused_by, decision, policy_header, state_header
                )
                return
        headers = [(_POLICY_HEADER, policy_header), (_STATE_HEADER, state_header)]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @classmethod
    async def _decide_with_companions(
        cls, bound: _Bound, plan: RoutePlan, policy: Policy, identity: str, scope: Scope
    ) -> list[tuple[Policy, Decision]]:
        """All decisions at once: on Redis they share one round trip (see redis_backend)."""
        policies = (policy, *plan.companions)
        identities = [identity, *(cls._header_identity(bound, c, scope) for c in plan.companions)]
        decisions = await asyncio.gather(
            *(bound.limiter.decide(p, key) for p, key in zip(policies, identities, strict=True))
        )
        return list(zip(policies, decisions, strict=True))

    @staticmethod
    def _header_identity(bound: _Bound, policy: Policy, scope: Scope) -> str:
        """The identity of an "ip" or "user" policy: the request line and headers suffice."""
        ip = bound.limiter.client_ip(scope)
        if policy.key.kind == "ip":
            return ip
        user = bound.users.user_for(scope)
        # No valid token: the request will be refused with 401, but still counts (against
        # its IP), which caps token guessing too.
        return f"user:{user}" if user else f"ip:{ip}"

    @classmethod
    async def _identity(
        cls, bound: _Bound, policy: Policy, scope: Scope, receive: Receive
    ) -> tuple[str, Receive]:
        if policy.key.kind not in ("ip+body", "body"):
            return cls._header_identity(bound, policy, scope), receive
        ip = bound.limiter.client_ip(scope)
        body, receive = await read_body(receive)
        field = await body_field(scope, body, policy.key.body_fields)
        if policy.key.kind == "body":
            # Counted per account whatever the address: a victim's inbox is shared by every IP.
            return f"body:{field}", receive
        return f"{ip}|{field}", receive

    @staticmethod
    async def _refuse(
        scope: Scope,
        receive: Receive,
        send: Send,
        plan: RoutePlan,
        policy: Policy,
        decision: Decision,
        policy_header: bytes,
        state_header: bytes,
    ) -> None:
        if plan.template is not None:
            scope["route"] = _TemplateRoute(plan.template)
        response = problem_response(
            429,
            f'quota exceeded for rate-limit policy "{policy.name}" '
            f"({policy.quota} requests per {policy.window_seconds} s); "
            f"retry after {decision.retry_after_seconds} s",
            slug="quota-exceeded",
            headers={
                "Retry-After": str(decision.retry_after_seconds),
                "RateLimit-Policy": policy_header.decode("ascii"),
                "RateLimit": state_header.decode("ascii"),
            },
            extra={"policy": policy.name},
        )
        await response(scope, receive, send)
