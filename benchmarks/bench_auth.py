"""Authentication throughput (issue 3): one uvicorn worker each, loaded side by side with wrk.

  bare        FastAPI hello endpoint, no middleware (benchmarks/bare_app.py)
  healthz     GET /healthz from create_app: the middleware stack alone, for reference
  me          GET /v1/users/me from create_app: the whole middleware stack, the access token's
              verification and the user's lookup (SQLite; PostgreSQL when reachable, also
              with Redis: the user cache answers, entitlements included, and PostgreSQL is
              not asked at all)
  prices      GET /v1/prices: the price catalog from memory, with its ETag and Cache-Control
  login       POST /v1/auth/login with a correct password: argon2id verification, a new
              session row and a signed access token

Goals (printed at the end of `make bench`): /v1/users/me on PostgreSQL + Redis at least 0.30 x
the bare app, /v1/prices at least 0.70 x.

Login is bounded by argon2 by design (about 25 ms of CPU per attempt with OWASP's parameters);
its ratio shows what one worker can absorb, not a target. Rate-limit quotas are raised out of
reach (auth_policies.toml) so every request is admitted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

from api.auth.keys import generate_private_key_pem
from benchmarks.goals import Goal
from benchmarks.harness import CONNECTIONS, ROOT, Result, load, serve

HERE = Path(__file__).resolve().parent
PASSWORD = "benchmark-password-not-common-42"  # noqa: S105 - a throwaway benchmark account
EMAIL = "bench@example.com"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
ROUND_SECONDS = int(os.environ.get("BENCH_DURATION", "5"))
TEST_DATABASE_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _migrate(database_url: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
    )


def _scratch_postgres() -> str | None:
    """A fresh database on the test server, or None when PostgreSQL is not reachable."""
    admin_dsn = make_url(TEST_DATABASE_URL).set(drivername="postgresql")
    name = f"slipway_bench_{os.getpid()}"
    try:
        with psycopg.connect(
            admin_dsn.render_as_string(hide_password=False), autocommit=True, connect_timeout=3
        ) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    return make_url(TEST_DATABASE_URL).set(database=name).render_as_string(hide_password=False)


def _drop_postgres(url: str) -> None:
    admin_dsn = make_url(TEST_DATABASE_URL).set(drivername="postgresql")
    with psycopg.connect(admin_dsn.render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    method: str = "GET"
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@contextmanager
def _slipway(
    label: str, database_url: str, keys: str, redis_url: str = ""
) -> Iterator[list[Target]]:
    """A migrated Slipway server with one account; yields its healthz, /me and login targets."""
    _migrate(database_url)
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": database_url,
        "JWT_PRIVATE_KEYS": keys,
        "RATE_LIMITS_FILE": str(HERE / "auth_policies.toml"),
        "REDIS_URL": redis_url,
    }
    account = {"email": EMAIL, "password": PASSWORD}
    with serve("api.main:app", env, ready_path="/healthz") as url:
        registered = httpx.post(url + "/v1/auth/register", json=account, timeout=30)
        if registered.status_code != 409:  # 409: a server before this one registered it
            registered.raise_for_status()
        login = httpx.post(url + "/v1/auth/login", json=account, timeout=30)
        login.raise_for_status()
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
        yield [
            Target(f"slipway GET /healthz ({label})", url + "/healthz"),
            Target(f"slipway GET /v1/users/me ({label})", url + "/v1/users/me", headers=bearer),
            Target(f"slipway GET /v1/prices ({label})", url + "/v1/prices"),
            Target(
                f"slipway POST /v1/auth/login ({label})",
                url + "/v1/auth/login",
                method="POST",
                body=json.dumps(account),
                headers={"Content-Type": "application/json"},
            ),
        ]


def _load(target: Target) -> Result:
    return load(
        target.name,
        target.url,
        method=target.method,
        body=target.body,
        headers=target.headers,
        duration=ROUND_SECONDS,
    )


def _measure(targets: list[Target]) -> dict[str, float]:
    """Rounds of (baseline, target) pairs: on a shared machine the load drifts, so each
    target is compared with the baseline measured just before it, and medians are shown."""
    baseline, cases = targets[0], targets[1:]
    runs: dict[str, list[Result]] = {target.name: [] for target in targets}
    ratios: dict[str, list[float]] = {baseline.name: [1.0], **{c.name: [] for c in cases}}
    for _ in range(ROUNDS):
        for target in cases:
            base = _load(baseline)
            result = _load(target)
            runs[baseline.name].append(base)
            runs[target.name].append(result)
            ratios[target.name].append(result.requests_per_second / base.requests_per_second)
    print(
        f"\nAuthentication: throughput against a bare FastAPI app  (wrk -t1 -c{CONNECTIONS}, "
        f"{ROUNDS} rounds of {ROUND_SECONDS}s, one uvicorn worker each; each case right after "
        "a baseline run; medians)"
    )
    print(f"{'case':<48} {'req/s':>10} {'p99 ms':>9} {'x baseline':>11} {'non-2xx':>8}")
    for name, results in runs.items():
        print(
            f"{name:<48} {statistics.median(r.requests_per_second for r in results):>10.0f} "
            f"{statistics.median(r.p99_ms for r in results):>9.2f} "
            f"{statistics.median(ratios[name]):>11.3f} {sum(r.non_2xx for r in results):>8}"
        )
    return {name: statistics.median(values) for name, values in ratios.items()}


DEPLOYED = "PostgreSQL + Redis"
GOALS = {
    f"slipway GET /v1/users/me ({DEPLOYED})": (
        "GET /v1/users/me (PostgreSQL + Redis) vs bare",
        0.30,
    ),
    f"slipway GET /v1/prices ({DEPLOYED})": ("GET /v1/prices vs bare", 0.70),
}


def main() -> list[Goal]:
    keys = generate_private_key_pem()
    with ExitStack() as servers:
        bare_url = servers.enter_context(serve("benchmarks.bare_app:app"))
        targets = [Target("bare FastAPI hello", bare_url + "/hello")]
        database_dir = servers.enter_context(tempfile.TemporaryDirectory())
        sqlite_url = f"sqlite+aiosqlite:///{database_dir}/bench.db"
        targets += servers.enter_context(_slipway("SQLite", sqlite_url, keys))
        postgres_url = _scratch_postgres()
        if postgres_url is None:
            print("PostgreSQL at TEST_DATABASE_URL is unreachable: its rows are skipped")
        else:
            servers.callback(_drop_postgres, postgres_url)
            targets += servers.enter_context(_slipway("PostgreSQL", postgres_url, keys))
            # The deployed shape: the user cache and the limiter's state in Redis.
            redis = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
            targets += servers.enter_context(
                _slipway(DEPLOYED, postgres_url, keys, redis_url=redis)
            )
        # Idle servers cost nothing: all stay up, and only the one under load works.
        ratios = _measure(targets)
    return [
        Goal(label, ratios[name], target)
        for name, (label, target) in GOALS.items()
        if name in ratios
    ]


if __name__ == "__main__":
    main()
