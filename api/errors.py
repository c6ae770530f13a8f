"""RFC 9457 problem details for every error the API returns.

Domain code raises `ProblemError`; the handlers here turn it, framework errors (404, 405,
422, 413), database errors and anything unexpected into `application/problem+json` with a
stable `type`. A database that cannot be reached, times out or has no free connection is
503 with Retry-After (a client or a load balancer retries; a credential rotation or a
fail-over heals without a restart because the pool reconnects); any other database error is
a 500 logged without the statement's parameters or the server's message (both may carry
emails, hashes or payloads).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from api.allowed_methods import allowed_methods

PROBLEM_TYPE_BASE = "https://slipway.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

logger = logging.getLogger("api.errors")

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "quota-exceeded",
    500: "internal-error",
    503: "service-unavailable",
}


# How long clients should wait before retrying while the database is unavailable: about the
# time a Multi-AZ fail-over or a rotated credential takes to be picked up.
DATABASE_RETRY_AFTER_SECONDS = 5


def problem_type(slug: str) -> str:
    return PROBLEM_TYPE_BASE + slug


def _slug_for(status: int) -> str:
    return _SLUGS.get(status, HTTPStatus(status).phrase.lower().replace(" ", "-"))


class ProblemError(Exception):
    """An error a client should see, rendered as problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or _slug_for(status)
        self.title = title or HTTPStatus(status).phrase
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": problem_type(slug or _slug_for(status)),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **(extra or {}),
    }
    return JSONResponse(
        jsonable_encoder(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_CONTENT_TYPE,
    )


def _validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    # Never echo the rejected input back: it may be a password or a card number.
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in errors
    ]


async def _problem_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(
        exc.status,
        exc.detail,
        slug=exc.slug,
        title=exc.title,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request.scope)
    return problem_response(exc.status_code, detail, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc.errors())
    json_invalid = any(error["type"] == "json_invalid" for error in errors)
    detail = "the request body is not valid JSON" if json_invalid else "the request is invalid"
    return problem_response(422, detail, extra={"errors": errors})


def is_database_unavailable(exc: BaseException) -> bool:
    """The database is down, unreachable, out of connections or too slow: retrying may work.

    OperationalError covers refused and dropped connections, statement and lock timeouts
    and server shutdowns (psycopg's QueryCanceled, LockNotAvailable, AdminShutdown);
    sqlalchemy's TimeoutError is an exhausted connection pool.
    """
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


def describe_database_error(exc: BaseException) -> str:
    """Error class and SQLSTATE only: the server's message may quote row values."""
    original = getattr(exc, "orig", None) or exc
    sqlstate = getattr(original, "sqlstate", None)
    name = type(original).__name__
    return f"{name} (SQLSTATE {sqlstate})" if sqlstate else name


def database_unavailable_response() -> Response:
    return problem_response(
        503,
        "the database is unavailable; retry later",
        slug="database-unavailable",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    if is_database_unavailable(exc):
        logger.warning(
            "database unavailable",
            extra={"path": request.url.path, "error": describe_database_error(exc)},
        )
        return database_unavailable_response()
    # The statement is logged with its placeholders; its parameters never are.
    statement = getattr(exc, "statement", None)
    logger.error(
        "database error",
        extra={
            "path": request.url.path,
            "error": describe_database_error(exc),
            "statement": statement[:500] if isinstance(statement, str) else None,
        },
    )
    return problem_response(500, "an unexpected error occurred")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
