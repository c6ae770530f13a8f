"""Shared fixtures: databases (SQLite and PostgreSQL, migrated once per session), Redis, and
apps served over ASGI to an httpx client.

Each test starts from empty tables: rows are deleted after every test that used a database,
which (unlike a rolled-back transaction) lets tests commit from concurrent connections.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import create_engine, delete

from api.auth.keys import generate_private_key_pem
from api.main import create_app
from api.models import metadata
from api.settings import Settings
from infra_pulumi.rehearsal.tls_postgres import PostgresUnavailable, TlsPostgres, tls_postgres
from tests.redis_cluster import LocalRedisCluster
from tests.services import (
    create_scratch_postgres_database,
    drop_postgres_database,
    require_redis,
    unavailable,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# `make test` runs the suite on two workers (pytest-xdist, --dist loadgroup), each a session of
# its own. The flows tests share a Prefect server (half a minute to start): they run on one
# worker, so it starts once. Cheaper shared fixtures (a stack's plan, a served deployment)
# start on both workers, which lets their long tests spread.
ONE_WORKER_DIRECTORIES = ("flows",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        directory = item.path.relative_to(tests).parts[0]
        if directory in ONE_WORKER_DIRECTORIES:
            item.add_marker(pytest.mark.xdist_group(directory))


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def _sync_url(url: str) -> str:
    return url.replace("sqlite+aiosqlite", "sqlite")


def delete_all_rows(database_url: str) -> None:
    engine = create_engine(_sync_url(database_url))
    try:
        with engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(delete(table))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    url = create_scratch_postgres_database()
    try:
        migrate(url)
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both backends: tests using this run once on SQLite and once on PostgreSQL."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="session")
def tls_postgres_server() -> Iterator[TlsPostgres]:
    """A throwaway PostgreSQL that, like RDS, takes only TLS + password connections, its
    certificate from a throwaway CA (started once per session, a few seconds)."""
    try:
        with tls_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A Redis Cluster of the session's own (three primaries with a replica each, a few
    seconds to start); tests may fail nodes over or move slots, each leaves it settled."""
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# Generous quotas so unrelated tests never meet a 429; rate-limit tests pass
# rate_limits_file=None to get the bundled defaults.
GENEROUS_RATE_LIMITS_FILE = FIXTURES / "ratelimits_generous.toml"


TEST_JWT_PRIVATE_KEY = generate_private_key_pem()
# Messages of apps using the default (outbox) transport land here, never in the repo's .data/.
TEST_OUTBOX_DIR = Path(tempfile.mkdtemp(prefix="slipway-outbox-"))
atexit.register(shutil.rmtree, TEST_OUTBOX_DIR, ignore_errors=True)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "app_env": "test",
        "database_url": database_url,
        "rate_limits_file": GENEROUS_RATE_LIMITS_FILE,
        # Keys are passed explicitly, so tests never generate a development key into .data/.
        "jwt_private_keys": TEST_JWT_PRIVATE_KEY,
        "email_outbox_dir": TEST_OUTBOX_DIR,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings_factory() -> Callable[..., Settings]:
    return make_settings


class AppHarness:
    """Starts apps (lifespan included) and hands out clients.

    An app lives as long as whatever started it: one started by a session or module fixture
    until the end of the session, one started by a test or its function fixtures until that
    test ends (`test_scope`). Each app holds database connections, and PostgreSQL's 100 were
    running out once every app a test had started stayed open until the end of the session.
    """

    def __init__(self, stack: AsyncExitStack) -> None:
        self._stacks = [stack]
        self._lasting: list[FastAPI] = []  # started by session and module fixtures

    async def start(self, settings: Settings) -> FastAPI:
        app = create_app(settings)
        await self._stacks[-1].enter_async_context(app.router.lifespan_context(app))
        if len(self._stacks) == 1:
            self._lasting.append(app)
        return app

    @asynccontextmanager
    async def test_scope(self) -> AsyncIterator[None]:
        """Apps started inside close when it ends; the lasting apps' idle pooled connections
        close too (a burst in one test left up to 20 per app open for the rest of the
        session; `make test` runs two sessions against one PostgreSQL)."""
        async with AsyncExitStack() as stack:
            self._stacks.append(stack)
            try:
                yield
            finally:
                self._stacks.remove(stack)
        for app in self._lasting:
            await app.state.database.engine.dispose()

    @staticmethod
    def client(app: FastAPI, client_ip: str = "127.0.0.1", **kwargs: Any) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver", **kwargs)


@pytest_asyncio.fixture(scope="session")
async def app_harness() -> AsyncIterator[AppHarness]:
    async with AsyncExitStack() as stack:
        yield AppHarness(stack)


@pytest_asyncio.fixture(autouse=True)
async def _apps_close_with_their_test(app_harness: AppHarness) -> AsyncIterator[None]:
    # Autouse fixtures of a scope are set up before the others of that scope and torn down
    # after them: session and module fixtures are already up (their apps stay), and the test's
    # own fixtures are done with their apps when these close.
    async with app_harness.test_scope():
        yield


@pytest_asyncio.fixture(scope="session")
async def app(app_harness: AppHarness, database_url: str) -> FastAPI:
    """One app per backend for the whole session."""
    return await app_harness.start(make_settings(database_url))


@pytest_asyncio.fixture
async def client(app: FastAPI, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with AppHarness.client(app) as http:
        yield http
    delete_all_rows(database_url)
