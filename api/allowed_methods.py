"""The `Allow` header of a 405: every method some route serves at the path.

Starlette answers 405 from the first route whose path matches, naming only that route's
methods: `POST /v1/payments` and `GET /v1/payments` are two routes, so a `PUT` was told
`Allow: POST`. RFC 9110 section 15.5.6 asks for the methods the resource supports.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import Scope


def _route_contexts(routes: list[Any]) -> list[Any]:
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.150 flattened included routers into app.routes.
        return routes
    return list(iter_route_contexts(routes))


def allowed_methods(scope: Scope) -> str:
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :] or "/"
    methods: set[str] = set()
    for route in _route_contexts(scope["app"].routes):
        regex = getattr(route, "path_regex", None)
        route_methods = getattr(route, "methods", None)
        if route_methods and isinstance(regex, re.Pattern) and regex.match(path):
            methods.update(route_methods)
    return ", ".join(sorted(methods))
