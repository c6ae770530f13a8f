"""Async engine and session dependency for SQLite (embedded default) and PostgreSQL.

Engines are created lazily, once per process (and so once per Lambda container), because
Mangum runs the ASGI lifespan on every invocation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from api.database_credentials import SecretCredentials
from api.redis_client import redis_client
from api.settings import Settings, normalise_database_url
from api.user_cache import SESSION_INFO_KEY, CachingSession, UserCache, UserFacet


def _ensure_sqlite_directory(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# A statement stuck behind a lock must not hold a request (and a pool slot) forever.
POSTGRES_CONNECT_ARGS: dict[str, Any] = {
    "options": "-c statement_timeout=15000",
    "connect_timeout": 5,
}


def _secret_connector(url: str, credentials: SecretCredentials) -> Callable[[], Awaitable[Any]]:
    """Opens connections with the secret's current credentials; when PostgreSQL refuses them,
    re-reads the secret once and, if it changed (rotation), connects again with the new ones.
    Connection errors carry no password: libpq names the user only."""
    import psycopg  # PostgreSQL deployments only: the SQLite default never loads it

    parsed = make_url(url)
    target: dict[str, Any] = {
        "host": parsed.host,
        "port": parsed.port or 5432,
        "dbname": parsed.database,
        **{key: str(value) for key, value in parsed.query.items()},
        **POSTGRES_CONNECT_ARGS,
    }

    async def connect() -> psycopg.AsyncConnection[Any]:
        used = await credentials.current()
        try:
            return await psycopg.AsyncConnection.connect(
                **target, user=used.username, password=used.password
            )
        except psycopg.OperationalError:
            newer = await credentials.refreshed(used)
            if newer is None:
                raise
            return await psycopg.AsyncConnection.connect(
                **target, user=newer.username, password=newer.password
            )

    return connect


class RetryingSession(Session):
    """Retries a transaction's first statement once when its pooled connection was dead.

    PostgreSQL pools check no connection on checkout (a pre-ping is a round trip on every
    request); a connection the server closed meanwhile (restart, failover, idle timeout)
    fails on first use instead. SQLAlchemy then invalidates it and every older pooled
    connection, and nothing of the transaction happened yet, so running the statement again
    on a fresh connection is safe. A failure later in a transaction is not retried.
    """

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._retry_first(super().execute, *args, **kwargs)

    def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return self._retry_first(super().scalar, *args, **kwargs)

    def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return self._retry_first(super().scalars, *args, **kwargs)

    def _retry_first(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        first = not self.in_transaction()
        try:
            return call(*args, **kwargs)
        except DBAPIError as exc:
            if not (first and exc.connection_invalidated):
                raise
            self.rollback()
            return call(*args, **kwargs)


@dataclass(frozen=True)
class PoolLimits:
    """How many PostgreSQL connections one process holds: `size` stay open between requests,
    `max_overflow` more open while a request needs them and close when it is done. A Lambda
    instance serves one request at a time, but a request may hold more than one session at once
    (a route's own and a service's), so it gets one kept plus a little overflow rather than a
    pool of one that would wait on itself."""

    size: int = 20
    max_overflow: int = 0


def create_engine(
    database_url: str,
    credentials: SecretCredentials | None = None,
    pool: PoolLimits | None = None,
) -> AsyncEngine:
    url = normalise_database_url(database_url)
    pool = pool or PoolLimits()
    if url.startswith("sqlite"):
        _ensure_sqlite_directory(url)
        engine = create_async_engine(
            url, pool_pre_ping=True, hide_parameters=True, connect_args={"timeout": 30}
        )
        event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    options: dict[str, Any] = (
        {"async_creator": _secret_connector(url, credentials)}
        if credentials is not None
        else {"connect_args": POSTGRES_CONNECT_ARGS}
    )
    return create_async_engine(
        url,
        # No pre-ping: RetryingSession recovers from a dead connection instead.
        pool_pre_ping=False,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_recycle=1800,
        # Errors and echo never render bound values (emails, password hashes, payloads).
        hide_parameters=True,
        **options,
    )


class Database:
    """One engine and session factory per process, created on first use."""

    def __init__(
        self,
        database_url: str,
        credentials: SecretCredentials | None = None,
        user_cache: UserCache | None = None,
        pool: PoolLimits | None = None,
    ) -> None:
        self.url = normalise_database_url(database_url)
        self.credentials = credentials
        self.user_cache = user_cache
        # Other domains' per-user data cached with the authenticated user (api.user_cache).
        self.user_facets: list[UserFacet] = []
        self.pool = pool or PoolLimits()
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._readers: async_sessionmaker[AsyncSession] | None = None

    @staticmethod
    def from_settings(settings: Settings) -> Database:
        credentials = None
        if settings.database_secret_arn and settings.aws_region:
            credentials = SecretCredentials(
                settings.database_secret_arn,
                settings.aws_region,
                settings.secrets_manager_endpoint,
            )
        user_cache = None
        if settings.redis_url:
            user_cache = UserCache(
                redis_client(
                    settings.redis_url, cluster=settings.redis_cluster, caller_bounds_calls=True
                )
            )
        pool = PoolLimits(settings.database_pool_size, settings.database_max_overflow)
        return Database(settings.database_url, credentials, user_cache, pool)

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = create_engine(self.url, self.credentials, self.pool)
        return self._engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            self._sessions = async_sessionmaker(
                self.engine,
                class_=CachingSession,
                expire_on_commit=False,
                sync_session_class=RetryingSession,
                info={SESSION_INFO_KEY: self.user_cache},
            )
        return self._sessions

    @property
    def readers(self) -> async_sessionmaker[AsyncSession]:
        """Sessions for one read outside any transaction (autocommit): the driver sends no
        BEGIN before it and no ROLLBACK after it, so the read is a single round trip. Never
        for several statements that must agree with each other or commit together; a write
        only when it is a single statement, which is atomic on its own (the webhook's)."""
        if self._readers is None:
            self._readers = async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                sync_session_class=RetryingSession,
            )
        return self._readers

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    async def start(self) -> None:
        """Warm what the first requests would otherwise wait for: the user cache's connection
        and script (the engine connects on first use)."""
        if self.user_cache is not None:
            await self.user_cache.start()

    async def dispose(self) -> None:
        if self.user_cache is not None:
            await self.user_cache.close()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessions = None
            self._readers = None


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


async def get_reader(request: Request) -> AsyncIterator[AsyncSession]:
    """An autocommit session (`Database.readers`) for a route whose database work is one
    read: the read is one round trip, with no BEGIN before it nor ROLLBACK after it."""
    async with database_of(request).readers() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReaderDep = Annotated[AsyncSession, Depends(get_reader)]
DatabaseDep = Annotated[Database, Depends(get_database)]
