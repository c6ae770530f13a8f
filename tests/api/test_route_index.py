"""Routing through the route index answers exactly as FastAPI's own router does.

Two copies of one app with nested routers, router-level dependencies, path convertors,
shadowed routes, method mismatches, redirects and plain Starlette routes: every request gets
the same status, headers and body from the copy whose requests go through the index as from
the copy routed by FastAPI alone. The index must also really take the requests it claims.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from api.route_index import IndexedDispatch, RouteIndex, install_indexed_dispatch


def _require_key(x_key: Annotated[str | None, Header()] = None) -> None:
    if x_key != "open-sesame":
        raise HTTPException(403, "a router-level dependency refused")


def _build_app() -> FastAPI:
    app = FastAPI()

    @app.get("/direct")
    async def direct() -> dict[str, str]:
        return {"route": "direct"}

    items = APIRouter(prefix="/items")

    @items.get("/{item_id:int}")
    async def item_by_number(item_id: int, request: Request) -> dict[str, Any]:
        return {"route": "by number", "item_id": item_id, "template": request.scope["route"].path}

    @items.get("/special")
    async def special() -> dict[str, str]:
        return {"route": "special"}

    @items.get("/{item_id}")
    async def item_by_name(item_id: str) -> dict[str, str]:
        return {"route": "by name", "item_id": item_id}

    @items.post("/{item_id}")
    async def replace_item(item_id: str, body: dict[str, int]) -> dict[str, Any]:
        return {"route": "replace", "item_id": item_id, "body": body}

    @items.get("/")
    async def list_items() -> list[str]:
        return ["a", "b"]

    inner = APIRouter(prefix="/inner")

    @inner.get("/ping")
    async def inner_ping(request: Request) -> dict[str, Any]:
        return {"route": "inner", "params": dict(request.path_params)}

    guarded = APIRouter(prefix="/guarded")

    @guarded.get("/{name}/detail")
    async def guarded_detail(name: str) -> dict[str, str]:
        return {"route": "guarded", "name": name}

    guarded.include_router(inner)
    app.include_router(items)
    app.include_router(guarded, prefix="/v2", dependencies=[Depends(_require_key)])

    @app.get("/text", response_class=PlainTextResponse)
    async def text() -> str:
        return "plain"

    async def starlette_endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse("starlette route")

    app.add_route("/starlette", starlette_endpoint, methods=["GET"])
    return app


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/direct", {}),
    ("GET", "/items/42", {}),
    ("GET", "/items/special", {}),
    ("GET", "/items/widget", {}),
    ("POST", "/items/widget", {"json": {"count": 3}}),
    ("POST", "/items/widget", {"json": {"count": "many"}}),
    ("POST", "/items/42", {"content": b"{x", "headers": {"content-type": "application/json"}}),
    ("DELETE", "/items/widget", {}),
    ("GET", "/items/", {}),
    ("GET", "/items", {}),
    ("GET", "/v2/guarded/x/detail", {"headers": {"x-key": "open-sesame"}}),
    ("GET", "/v2/guarded/x/detail", {}),
    ("GET", "/v2/guarded/inner/ping", {"headers": {"x-key": "open-sesame"}}),
    ("GET", "/v2/guarded/inner/ping", {}),
    ("POST", "/v2/guarded/inner/ping", {"headers": {"x-key": "open-sesame"}}),
    ("GET", "/guarded/x/detail", {}),
    ("GET", "/text", {}),
    ("GET", "/starlette", {}),
    ("POST", "/starlette", {}),
    ("GET", "/nowhere", {}),
    ("GET", "/openapi.json", {}),
]


async def _answers(app: FastAPI) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    transport = httpx.ASGITransport(app=app)
    answers = []
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for method, path, options in REQUESTS * 2:  # the second pass answers from the cache
            response = await client.request(method, path, follow_redirects=False, **options)
            answers.append((response.status_code, response.headers.multi_items(), response.content))
    return answers


async def test_indexed_routing_answers_exactly_like_fastapi() -> None:
    indexed = _build_app()
    install_indexed_dispatch(indexed)

    expected = await _answers(_build_app())
    assert await _answers(indexed) == expected
    # The cases above cover what they claim: a redirect, 404, 405, 403, 422 and successes.
    statuses = {status for status, _, _ in expected}
    assert {200, 307, 403, 404, 405, 422} <= statuses


async def test_index_takes_api_routes_and_leaves_the_rest_to_fastapi() -> None:
    app = _build_app()
    passed_on: list[tuple[str, str]] = []
    router_app = app.router.middleware_stack

    async def fastapi_router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            passed_on.append((scope["method"], scope["path"]))
        await router_app(scope, receive, send)

    app.router.middleware_stack = IndexedDispatch(app, fastapi_router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for method, path in [
            ("GET", "/items/42"),
            ("GET", "/v2/guarded/inner/ping"),
            ("POST", "/items/x"),
            ("GET", "/text"),
        ]:
            await client.request(method, path)
        assert passed_on == []
        for method, path in [
            ("GET", "/starlette"),  # a plain Starlette route
            ("GET", "/openapi.json"),
            ("DELETE", "/items/x"),  # 405: FastAPI answers with its Allow header
            ("GET", "/items"),  # redirect to the slash
            ("GET", "/nowhere"),
        ]:
            await client.request(method, path)
        assert [path for _, path in passed_on] == [
            "/starlette",
            "/openapi.json",
            "/items/x",
            "/items",
            "/nowhere",
        ]


def test_index_keeps_routing_order_and_converts_parameters() -> None:
    index = RouteIndex.of(_build_app())
    number = index.match("GET", "/items/42")
    assert number is not None
    assert number.route.template == "/items/{item_id}"
    assert number.path_params == {"item_id": 42}
    # The int route comes first, so "special" is shadowed only by what precedes it.
    special = index.match("GET", "/items/special")
    assert special is not None
    assert special.route.api_route is not None
    assert special.route.api_route.name == "special"
    assert index.match("DELETE", "/items/x") is None
    nested = index.match("GET", "/v2/guarded/inner/ping")
    assert nested is not None
    assert nested.route.template == "/v2/guarded/inner/ping"


# Paths longer than the cache keeps are resolved anew every time, with the same outcome.
@pytest.mark.parametrize("path", ["/items/" + "x" * 300, "/items/yyyyy"])
def test_long_and_short_paths_route_alike(path: str) -> None:
    index = RouteIndex.of(_build_app())
    first = index.match("GET", path)
    again = index.match("GET", path)
    assert first is not None
    assert again is not None
    assert first.route is again.route
    assert first.path_params == again.path_params == {"item_id": path.removeprefix("/items/")}
