"""Pure ASGI middleware around every request: request id, body cap, last-resort errors.

Pure ASGI (not BaseHTTPMiddleware) keeps the per-request cost to a few function calls.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem_response
from api.logging_config import request_id_var

MAX_BODY_BYTES = 1024 * 1024
# Successful, quick requests are logged at DEBUG: a synchronous log line per request halved
# throughput in the benchmark, and the ALB/CloudFront access logs already record them.
SLOW_REQUEST_SECONDS = 1.0
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

logger = logging.getLogger("api.request")


class BodyTooLargeError(HTTPException):
    """The client sent more than the body cap.

    An HTTPException so that FastAPI's body parsing re-raises it as-is (it turns other
    errors into 400) and the problem handler answers 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request bodies are limited to {limit} bytes")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _incoming_request_id(scope: Scope) -> str:
    raw = _header(scope, b"x-request-id")
    if raw is not None:
        candidate = raw.decode("latin-1")
        # Only ids that are safe to log and echo are honoured; anything else is replaced.
        if _REQUEST_ID_PATTERN.match(candidate):
            return candidate
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Outermost layer: whatever happens inside, the client gets problem+json with an id."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = [0]
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), request_id_header]
            await send(message)

        try:
            declared = _header(scope, b"content-length")
            if declared is not None and (
                not declared.isdigit() or int(declared) > self.max_body_bytes
            ):
                raise BodyTooLargeError(self.max_body_bytes)
            await self.app(scope, self._capped(receive), send_with_id)
        except BodyTooLargeError as exc:
            await self._fail(send_with_id, status_holder, 413, exc.detail)
        except Exception:
            logger.exception("unhandled error", extra={"path": scope.get("path")})
            await self._fail(send_with_id, status_holder, 500, "an unexpected error occurred")
        finally:
            elapsed = time.perf_counter() - started
            status = status_holder[0]
            level = (
                logging.INFO if status >= 400 or elapsed >= SLOW_REQUEST_SECONDS else logging.DEBUG
            )
            if logger.isEnabledFor(level):
                logger.log(
                    level,
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)

    def _capped(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        return capped_receive

    @staticmethod
    async def _fail(send: Send, status_holder: list[int], status: int, detail: str) -> None:
        if status_holder[0]:
            return  # The response already started; nothing more can be said to the client.
        response = problem_response(status, detail)
        await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
