"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from api.db import Database
from api.errors import DATABASE_RETRY_AFTER_SECONDS, ProblemError

router = APIRouter(tags=["health"])
logger = logging.getLogger("api.health")

READINESS_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up; no dependency is touched."""
    return {"status": "ok"}


async def _database_ready(database: Database) -> None:
    async with database.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


@router.get("/readyz", responses={503: {"description": "a dependency is unavailable"}})
async def readyz(request: Request) -> Response:
    """Every dependency answers: the database, and Redis when one is configured."""
    checks = {"database": _database_ready(request.app.state.database)}
    for name, probe in request.app.state.readiness_probes.items():
        checks[name] = probe()
    failing: list[str] = []
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check, READINESS_TIMEOUT_SECONDS)
        except Exception as exc:
            # The reason goes to the log only: connection strings must not reach clients.
            logger.warning("readiness check failed", extra={"dependency": name, "error": repr(exc)})
            failing.append(name)
    if failing:
        raise ProblemError(
            503,
            f"dependency unavailable: {', '.join(failing)}",
            title="Service Unavailable",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
            extra={"failing": failing},
        )
    return Response('{"status":"ready"}', media_type="application/json")
