"""The OpenAPI document says exactly what each operation can answer.

FastAPI documents the success response and a 422 whose body (`HTTPValidationError`, as
`application/json`) is not what this API sends. Every error here is RFC 9457 problem+json
(api/errors.py), and several come from layers no route declares: the body cap (413), the
rate limiter (429), authentication (401), a database outage (503), path ids that match
nothing (404). A client generated from the document must be told about all of them.

So the document is post-processed once, from facts about each route rather than from lists
kept by hand, and routes added later are covered without doing anything:

- every 4xx/5xx response is `application/problem+json` with the `Problem` schema;
- 400 and 413 where there is a request body (malformed JSON, the body cap), 422 where there
  is any input; 401 where a bearer token is required; 404 where the path has parameters;
  429 where a rate-limit policy applies (exempt routes are never limited); 503 where the
  route uses the database (an outage answers 503 with Retry-After).

Routes still declare what only they know (409 email taken, 403 not an admin, ...), with a
description and no content: the content is filled in here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.db import get_session
from api.errors import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_REF = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM_SCHEMA_NAME,
    "description": "RFC 9457 problem details; 422 adds `errors`, 429 names the policy.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": ["string", "null"]},
                },
            },
        },
    },
}

_STANDARD_DESCRIPTIONS = {
    400: "the request body is malformed",
    401: "missing, invalid or expired bearer token",
    404: "no such resource",
    413: "the request body is larger than allowed",
    422: "the request is invalid",
    429: "rate limited; retry after Retry-After seconds",
    503: "a dependency is unavailable; retry after Retry-After seconds",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_PATH_PARAMETER = re.compile(r"{[^}]+}")


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """Every documented route, however deeply routers are included (see api.ratelimit.routes)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.150 flattened included routers into app.routes.
        contexts: list[Any] = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    for context in contexts:
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield context


def _uses(dependant: Any, call: Callable[..., Any]) -> bool:
    pending, seen = [dependant], set()
    while pending:
        current = pending.pop()
        for sub in getattr(current, "dependencies", ()) or ():
            if id(sub) not in seen:
                seen.add(id(sub))
                if getattr(sub, "call", None) is call:
                    return True
                pending.append(sub)
    return False


def _standard_statuses(app: FastAPI, route: Any, operation: dict[str, Any]) -> set[int]:
    statuses = set()
    has_body = "requestBody" in operation
    if has_body:
        statuses |= {400, 413}
    if has_body or operation.get("parameters"):
        statuses.add(422)
    if operation.get("security"):
        statuses.add(401)
    if _PATH_PARAMETER.search(route.path_format):
        statuses.add(404)
    if _uses(route.dependant, get_session):
        statuses.add(503)
    limiter = getattr(app.state, "rate_limiter", None)
    for method in route.methods:
        policy = (
            limiter.policies.policy_for(
                method, route.path_format, requires_bearer=bool(operation.get("security"))
            )
            if limiter is not None
            else None
        )
        if policy is not None:
            statuses.add(429)
    return statuses


def _as_problem(status: int, response: dict[str, Any]) -> None:
    response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}}
    if status in (429, 503):
        response.setdefault("headers", {}).update(_RETRY_AFTER)


def complete_error_responses(app: FastAPI, document: dict[str, Any]) -> dict[str, Any]:
    """Add the standard error responses to every operation and make all errors problem+json."""
    for route in _api_routes(app):
        path_item = document["paths"].get(route.path_format, {})
        for method in route.methods:
            operation = path_item.get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in _standard_statuses(app, route, operation):
                responses.setdefault(str(status), {"description": _STANDARD_DESCRIPTIONS[status]})
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400:
                    _as_problem(int(code), response)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas[PROBLEM_SCHEMA_NAME] = PROBLEM_SCHEMA
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    return document


OpenAPIRefinement = Callable[[FastAPI, dict[str, Any]], None]


def constrain_property(
    document: dict[str, Any], schema: str, field: str, **constraints: Any
) -> None:
    """Add JSON Schema keywords to one property of a component schema, for refinements."""
    component = document.get("components", {}).get("schemas", {}).get(schema)
    if component is not None:
        component["properties"][field].update(constraints)


def install_openapi_document(app: FastAPI) -> None:
    """Post-process FastAPI's document once, when first served. Call after every route and
    the rate limiter are installed. Domain packages may append to
    `app.state.openapi_refinements` what only they know (valid ids from a runtime catalog)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = complete_error_responses(app, generate())
            refinement: OpenAPIRefinement
            for refinement in app.state.openapi_refinements:
                refinement(app, document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
