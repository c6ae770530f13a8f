"""Async engine and session dependency for SQLite (embedded default) and PostgreSQL.

Engines are created lazily, once per process (and so once per Lambda container), because
Mangum runs the ASGI lifespan on every invocation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from api.settings import normalise_database_url


def _ensure_sqlite_directory(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(database_url: str) -> AsyncEngine:
    url = normalise_database_url(database_url)
    if url.startswith("sqlite"):
        _ensure_sqlite_directory(url)
        engine = create_async_engine(
            url, pool_pre_ping=True, hide_parameters=True, connect_args={"timeout": 30}
        )
        event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,
        # Errors and echo never render bound values (emails, password hashes, payloads).
        hide_parameters=True,
        # A statement stuck behind a lock must not hold a request (and a pool slot) forever.
        connect_args={"options": "-c statement_timeout=15000", "connect_timeout": 5},
    )


class Database:
    """One engine and session factory per process, created on first use."""

    def __init__(self, database_url: str) -> None:
        self.url = normalise_database_url(database_url)
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_engine(self.url)
        return self._engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        return self._sessions

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    async def dispose(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessions = None


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


# Dependencies are `async def` even when they await nothing: FastAPI runs plain `def`
# dependencies in its thread pool, which costs more than the whole lookup.
async def get_database(request: Request) -> Database:
    return database_of(request)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with database_of(request).sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
DatabaseDep = Annotated[Database, Depends(get_database)]
