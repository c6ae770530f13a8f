"""Rate-limit overhead (issue 4): one uvicorn worker each, loaded side by side with wrk.

  bare FastAPI hello          the baseline (benchmarks/bare_app.py)
  slowapi on Redis, hello     the same endpoint limited by slowapi
  our limiter on Redis, hello the same endpoint behind our middleware (redis-py, hiredis):
                              like for like
  ..., 65536 clients          the same with every request from another client address, so that
                              each batch of decisions spans many keys
  ... on a cluster, 65536 ... the same on a local 3-primary Redis Cluster (REDIS_CLUSTER=true):
                              each batch is split by hash slot (needs redis-server, redis-cli)
  slipway GET /v1/prices      create_app, whole middleware stack, anonymous policy on Redis
                              (quota raised out of reach so that every request is admitted
                              and pays for a full decision)
  ... /v1/prices exempt       the same app and endpoint without a decision: the difference
                              to the row above is the limiter's share

Target: slipway on Redis >= 0.6 x bare, with (next to) no decision falling back in-process:
a decision whose round trip exceeds the 50 ms budget falls back, so the fallback count printed
after the table shows whether the budget held at this throughput. Needs Redis at REDIS_URL or
TEST_REDIS_URL, and wrk.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

from benchmarks.goals import Goal
from benchmarks.harness import Result, load, print_table, serve
from tests.redis_cluster import LocalRedisCluster

HERE = Path(__file__).resolve().parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
REDIS_URL = os.environ.get("REDIS_URL") or os.environ.get(
    "TEST_REDIS_URL", "redis://127.0.0.1:6379/0"
)


PRICES_GOAL = 0.6
# The 50 ms budget holds at this throughput when next to no decision falls back in-process.
FALLBACK_SHARE_GOAL = 0.001
MANY_CLIENTS = ", 65536 clients"
# Every request from the next of 65536 addresses (the app trusts wrk's X-Forwarded-For).
ONE_CLIENT_PER_REQUEST = """
local sent = 0
request = function()
  sent = sent + 1
  local address = "10." .. (sent % 256) .. "." .. (math.floor(sent / 256) % 256) .. ".1"
  wrk.headers["X-Forwarded-For"] = address
  return wrk.format()
end
"""


def _slipway_env(database_dir: str, policy_file: str) -> dict[str, str]:
    return {
        "APP_ENV": "development",
        # /v1/prices touches no database; the file only has to be creatable.
        "DATABASE_URL": f"sqlite+aiosqlite:///{database_dir}/bench.db",
        "RATE_LIMITS_FILE": str(HERE / policy_file),
        "REDIS_URL": REDIS_URL,
    }


def _decisions(base_url: str) -> tuple[float, float]:
    """Decisions made during the run, and how many of them fell back in-process (/metrics)."""
    text = httpx.get(base_url + "/metrics", timeout=5).text

    def total(pattern: str) -> float:
        return sum(float(value) for value in re.findall(pattern + r"\S* ([0-9.e+]+)$", text, re.M))

    return total(r"^ratelimit_decisions_total"), total(r"^ratelimit_backend_errors_total")


def _local_cluster(stack: ExitStack, directory: str) -> str | None:
    """A 3-primary Redis Cluster for the run (the tests' own), or None without redis-server."""
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        print("no redis-server/redis-cli: the Redis Cluster row is left out")
        return None
    # Redis's default node timeout: on a loaded machine the tests' 1 s fails nodes over.
    cluster = LocalRedisCluster(Path(directory) / "redis-cluster", node_timeout_ms=15_000)
    cluster.directory.mkdir()
    stack.callback(cluster.stop)
    cluster.start()
    return cluster.url


def main() -> list[Goal]:
    """All servers run side by side; wrk loads them in turn, ROUNDS times each, and the
    best round of each case is reported (on a shared machine the best round is the one least
    disturbed by other work, so ratios of best rounds are the steadiest)."""
    bare: tuple[str, dict[str, str]] = ("benchmarks.bare_app:app", {})
    slowapi = ("benchmarks.ratelimit_slowapi_app:app", {"REDIS_URL": REDIS_URL})
    ours = ("benchmarks.ratelimit_hello_app:app", {"REDIS_URL": REDIS_URL})
    with tempfile.TemporaryDirectory() as database_dir, ExitStack() as stack:
        # (name, base URL, path, whether it exports the limiter's metrics)
        cases = [
            ("bare FastAPI hello", stack.enter_context(serve(*bare)), "/hello", False),
            ("slowapi on Redis, hello", stack.enter_context(serve(*slowapi)), "/hello", False),
            ("our limiter on Redis, hello", stack.enter_context(serve(*ours)), "/hello", True),
        ]  # fmt: skip
        many = {**ours[1], "TRUSTED_PROXIES": "127.0.0.1/32"}
        base = stack.enter_context(serve(ours[0], many))
        cases.append(("our limiter on Redis" + MANY_CLIENTS, base, "/hello", True))
        cluster_url = _local_cluster(stack, database_dir)
        if cluster_url:
            on_cluster = {**many, "REDIS_URL": cluster_url, "REDIS_CLUSTER": "true"}
            base = stack.enter_context(serve(ours[0], on_cluster))
            cases.append(("our limiter on a cluster" + MANY_CLIENTS, base, "/hello", True))
        for name, policy_file in (
            ("slipway GET /v1/prices, Redis limiter", "ratelimit_policies.toml"),
            ("slipway GET /v1/prices, exempt (no limit)", "ratelimit_policies_exempt.toml"),
        ):
            env = _slipway_env(database_dir, policy_file)
            base = stack.enter_context(serve("api.main:app", env, ready_path="/healthz"))
            cases.append((name, base, "/v1/prices", True))
        best: dict[str, Result] = {}
        for _ in range(ROUNDS):
            for name, base, path, _ in cases:
                lua = ONE_CLIENT_PER_REQUEST if name.endswith(MANY_CLIENTS) else ""
                result = load(name, base + path, lua=lua)
                if name not in best or result.requests_per_second > best[name].requests_per_second:
                    best[name] = result
        print_table(
            f"Rate limiting: throughput against a bare FastAPI app (best of {ROUNDS} rounds)",
            [best[name] for name, _, _, _ in cases],
        )
        goals = [
            Goal(
                "rate limiting: slipway /v1/prices on Redis vs bare",
                best["slipway GET /v1/prices, Redis limiter"].requests_per_second
                / best["bare FastAPI hello"].requests_per_second,
                PRICES_GOAL,
            )
        ]
        for name, base, _, has_metrics in cases:
            if has_metrics:
                decisions, fallbacks = _decisions(base)
                print(f"  {name}: {decisions:.0f} decisions, {fallbacks:.0f} fell back in-process")
                if name.endswith(MANY_CLIENTS):
                    share = fallbacks / decisions if decisions else 1.0
                    goal = f"rate limiting: share fallen back, {name.removesuffix(MANY_CLIENTS)}"
                    goals.append(Goal(goal, share, FALLBACK_SHARE_GOAL, at_least=False))
    return goals


if __name__ == "__main__":
    main()
