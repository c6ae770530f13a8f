"""HEAD answered like GET without a body (RFC 9110 section 9.3.2).

FastAPI registers only the methods a route declares, so HEAD on a GET route answered 405.
Here a HEAD request runs the GET route (rate-limited and authorised as that GET), and the
status and headers, Content-Length included, go out without the body.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # A copy: the server (and the metrics and logs outside) still see a HEAD request.
        as_get = {**scope, "method": "GET"}

        async def send_without_body(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            await self.app(as_get, receive, send_without_body)
        finally:
            if "route" in as_get:  # the metrics label the request with its route template
                scope["route"] = as_get["route"]
