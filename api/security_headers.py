"""Browser security headers on every response, errors and last-resort failures included.

The API answers JSON, so its own policy forbids everything a browser could do with a response
(`default-src 'none'`): a response rendered by mistake as a page can run nothing and be framed
nowhere. The pages the app does serve (the OpenAPI UI) set their own, still strict, policy on
the response; this layer keeps it and adds the rest.

HSTS is sent only by staging and production: they are reached over HTTPS only (CloudFront
redirects HTTP), while a development server on http://127.0.0.1 must not pin browsers to
HTTPS for localhost.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
HSTS_MAX_AGE_SECONDS = 365 * 24 * 3600

_CSP = b"content-security-policy"
_ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_HSTS = (b"strict-transport-security", f"max-age={HSTS_MAX_AGE_SECONDS}".encode())


class SecurityHeadersMiddleware:
    """Pure ASGI: adds the headers at `http.response.start`, whatever produced the response."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self._headers = (*_ALWAYS, _HSTS) if hsts else _ALWAYS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {bytes(name).lower() for name, _ in headers}
                headers.extend(h for h in self._headers if h[0] not in present)
                if _CSP not in present:
                    headers.append((_CSP, API_CONTENT_SECURITY_POLICY.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
