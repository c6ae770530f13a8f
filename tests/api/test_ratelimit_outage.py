"""Redis failing under the limiter: a throwaway `redis-server` of this test's own is killed,
stalled and restarted while requests keep coming. No request may fail because of it, every
fallback decision is counted, and decisions return to Redis once it is back."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import redis
import uvloop
from prometheus_client import REGISTRY

from api.ratelimit.gcra import InProcessBackend
from api.ratelimit.policies import load_policy_set
from api.ratelimit.redis_backend import GCRA_SCRIPT_SHA, RedisBackend, backend_client
from api.settings import SettingsError, load_settings
from tests.api.ratelimit_harness import LimitedApp, start_limited_app
from tests.conftest import migrate
from tests.live_server import free_port
from tests.services import unavailable

COOLDOWN_SECONDS = 0.05


class ThrowawayRedis:
    """A redis-server on a free port, no persistence, that the test may kill and restart."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        # As an operator would paste it: the password raw, whatever characters it holds.
        credentials = f":{password}@" if password else ""
        self.url = f"redis://{credentials}127.0.0.1:{self.port}/0"
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed (make system-deps installs it)")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self._directory)]
        command += ["--enable-debug-command", "local"]  # DEBUG SLEEP stalls it on purpose
        if self.password:
            command += ["--requirepass", self.password]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError("throwaway redis-server did not start") from None
                time.sleep(0.02)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout=10)
            self._process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password, socket_timeout=5)


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def outage_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('rl-outage') / 'rl.db'}"
    migrate(url)
    return url


async def _start(
    stack: AsyncExitStack, database: str, server: ThrowawayRedis, budget: float
) -> LimitedApp:
    return await start_limited_app(
        stack, database, redis_url=server.url, redis_timeout=budget, redis_cooldown=COOLDOWN_SECONDS
    )


@pytest_asyncio.fixture
async def limited(
    outage_database: str, throwaway_redis: ThrowawayRedis
) -> AsyncIterator[LimitedApp]:
    """The app on the throwaway server with a generous budget, so that a loaded test machine
    stalling a round trip cannot cause a fallback the test did not (a killed server fails at
    once, whatever the budget)."""
    async with AsyncExitStack() as stack:
        yield await _start(stack, outage_database, throwaway_redis, budget=2.0)


@pytest_asyncio.fixture
async def limited_on_budget(
    outage_database: str, throwaway_redis: ThrowawayRedis
) -> AsyncIterator[LimitedApp]:
    """The same with the production budget of 50 ms per round trip."""
    async with AsyncExitStack() as stack:
        yield await _start(stack, outage_database, throwaway_redis, budget=0.05)


def _fallbacks() -> float:
    return REGISTRY.get_sample_value("ratelimit_backend_errors_total") or 0.0


def _stored_keys(server: ThrowawayRedis, limited: LimitedApp) -> list[bytes]:
    return list(server.client().scan_iter(match=limited.key_prefix + "*"))


async def _get_prices(client: httpx.AsyncClient, count: int) -> list[int]:
    return [(await client.get("/v1/prices")).status_code for _ in range(count)]


async def test_killed_redis_falls_back_and_recovers(
    limited: LimitedApp, throwaway_redis: ThrowawayRedis
) -> None:
    async with limited.client("198.51.100.200") as client:
        before = _fallbacks()
        assert await _get_prices(client, 5) == [200] * 5
        assert _fallbacks() == before
        assert len(_stored_keys(throwaway_redis, limited)) == 1

        throwaway_redis.kill()
        during = _fallbacks()
        statuses = await _get_prices(client, 20)
        # Pause past the cool-down so that some decisions try Redis again (and fail again).
        await asyncio.sleep(COOLDOWN_SECONDS * 2)
        statuses += await _get_prices(client, 20)
        assert statuses == [200] * 40
        assert _fallbacks() == during + 40
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["failing"] == ["redis"]

        throwaway_redis.start()  # Same port, empty: the script must be loaded again.
        await asyncio.sleep(COOLDOWN_SECONDS * 2)
        after = _fallbacks()
        assert await _get_prices(client, 5) == [200] * 5
        assert _fallbacks() == after
        assert len(_stored_keys(throwaway_redis, limited)) == 1
        assert throwaway_redis.client().script_exists(GCRA_SCRIPT_SHA) == [True]


async def test_slow_redis_falls_back_within_the_budget(
    limited_on_budget: LimitedApp, throwaway_redis: ThrowawayRedis
) -> None:
    async with limited_on_budget.client("198.51.100.201") as client:
        assert await _get_prices(client, 1) == [200]
        before = _fallbacks()
        # Redis stops answering for half a second, ten times the 50 ms budget.
        stall = asyncio.create_task(
            asyncio.to_thread(throwaway_redis.client().execute_command, "DEBUG", "SLEEP", "0.5")
        )
        await asyncio.sleep(0.1)
        response = await client.get("/v1/prices")
        assert response.status_code == 200
        assert response.headers["RateLimit"].startswith('"anonymous";r=')
        assert _fallbacks() == before + 1
        await stall


async def test_concurrent_decisions_share_one_round_trip(
    limited: LimitedApp, throwaway_redis: ThrowawayRedis
) -> None:
    """64 concurrent requests: at most two EVALSHA commands reach Redis, none is lost."""
    server = throwaway_redis.client()
    server.config_resetstat()
    async with limited.client("198.51.100.202") as client:
        responses = await asyncio.gather(*[client.get("/v1/prices") for _ in range(64)])
    assert [response.status_code for response in responses] == [200] * 64
    remaining = sorted(
        int(response.headers["RateLimit"].split("r=")[1].split(";")[0]) for response in responses
    )
    assert remaining == list(range(300 - 64, 300))  # each decision saw the ones before it
    calls = server.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    assert 1 <= calls <= 2


def test_redis_decisions_under_uvloop(throwaway_redis: ThrowawayRedis) -> None:
    """uvicorn serves on uvloop, whose transports are not asyncio's classes."""
    policy = load_policy_set().policies["login"]
    before = _fallbacks()

    async def decide_twelve() -> list[bool]:
        # Database 3: the connection selects it before the first decision.
        backend = RedisBackend(
            backend_client(throwaway_redis.url.removesuffix("/0") + "/3"),
            InProcessBackend(),
            clock_ms=lambda: int(time.time() * 1000),
        )
        await backend.load_script()
        try:
            decisions = await asyncio.gather(*[backend.decide("uv:k", policy) for _ in range(12)])
        finally:
            await backend.close()
        return [decision.allowed for decision in decisions]

    assert uvloop.run(decide_twelve()) == [True] * 10 + [False] * 2
    assert _fallbacks() == before
    assert throwaway_redis.client().exists("uv:k") == 0
    assert redis.Redis(port=throwaway_redis.port, db=3).exists("uv:k") == 1


async def decide_while_the_loop_is_busy(backend: RedisBackend, prefix: str) -> list[bool]:
    """Batches of decisions on the production budget (50 ms), each time with other work
    blocking the event loop for 80 ms at another moment of the round trip (before the command
    is written, after it, while the reply is read): a fast Redis must decide them all."""
    policy = load_policy_set().policies["anonymous"]
    loop = asyncio.get_running_loop()
    allowed: list[bool] = []
    for turns_later in range(4):
        decisions = asyncio.gather(*[backend.decide(f"{prefix}{i}", policy) for i in range(12)])
        block: Callable[[], object] = partial(time.sleep, 0.08)
        for _ in range(turns_later):
            block = partial(loop.call_soon, block)
        loop.call_soon(block)
        allowed += [decision.allowed for decision in await decisions]
    return allowed


def test_a_busy_event_loop_does_not_turn_fast_replies_into_fallbacks(
    throwaway_redis: ThrowawayRedis,
) -> None:
    """The budget is Redis's: time the event loop spends on other work is not held against it."""
    before = _fallbacks()

    async def decide() -> list[bool]:
        backend = RedisBackend(
            backend_client(throwaway_redis.url),
            InProcessBackend(),
            clock_ms=lambda: int(time.time() * 1000),
            timeout=0.05,
        )
        await backend.load_script()
        try:
            return await decide_while_the_loop_is_busy(backend, "busy:")
        finally:
            await backend.close()

    assert uvloop.run(decide()) == [True] * 48
    assert _fallbacks() == before
    assert len(list(throwaway_redis.client().scan_iter(match="busy:*"))) == 12


PASSWORD_WITH_URL_DELIMITERS = "s3cr#t/pa?ss@wXrd9"


async def test_a_password_with_url_delimiters_reaches_redis(
    outage_database: str, tmp_path: Path
) -> None:
    """Issue 12, finding 8: `#`, `/`, `?` and `@` in a raw REDIS_URL password."""
    server = ThrowawayRedis(tmp_path, password=PASSWORD_WITH_URL_DELIMITERS)
    server.start()
    try:
        async with AsyncExitStack() as stack:
            limited = await _start(stack, outage_database, server, budget=2.0)
            fallbacks = _fallbacks()
            async with limited.client("198.51.100.150") as client:
                assert await _get_prices(client, 3) == [200] * 3
            assert _fallbacks() == fallbacks  # decided on Redis, after AUTH
            assert _stored_keys(server, limited)
    finally:
        server.kill()


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD_WITH_URL_DELIMITERS}@cache:notaport/0",
        f"redis://:{PASSWORD_WITH_URL_DELIMITERS}@cache:6379/notadb",
        f"redis://:{PASSWORD_WITH_URL_DELIMITERS}@",
        f"http://:{PASSWORD_WITH_URL_DELIMITERS}@cache",
    ],
)
def test_a_bad_redis_url_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "REDIS_URL" in message
    for fragment in ("s3cr", "pa?ss", "wXrd9", "notaport", "notadb"):
        assert fragment not in message
