"""Rate-limit overhead (issue 4): one uvicorn worker each, loaded side by side with wrk.

  bare FastAPI hello          the baseline (benchmarks/bare_app.py)
  slowapi on Redis, hello     the same endpoint limited by slowapi
  our limiter on Redis, hello the same endpoint behind our middleware: like for like
  slipway GET /v1/prices      create_app, whole middleware stack, anonymous policy on Redis
                              (quota raised out of reach so that every request is admitted
                              and pays for a full decision)
  ... /v1/prices exempt       the same app and endpoint without a decision: the difference
                              to the row above is the limiter's share

Target: slipway on Redis >= 0.6 x bare. Needs Redis at REDIS_URL or TEST_REDIS_URL, and wrk.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

from benchmarks.harness import Result, load, print_table, serve

HERE = Path(__file__).resolve().parent
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
REDIS_URL = os.environ.get("REDIS_URL") or os.environ.get(
    "TEST_REDIS_URL", "redis://127.0.0.1:6379/0"
)


def _slipway_env(database_dir: str, policy_file: str) -> dict[str, str]:
    return {
        "APP_ENV": "development",
        # /v1/prices touches no database; the file only has to be creatable.
        "DATABASE_URL": f"sqlite+aiosqlite:///{database_dir}/bench.db",
        "RATE_LIMITS_FILE": str(HERE / policy_file),
        "REDIS_URL": REDIS_URL,
    }


def _decisions(base_url: str) -> str:
    """Decisions made on Redis vs fallen back in-process during the run (from /metrics)."""
    text = httpx.get(base_url + "/metrics", timeout=5).text

    def total(pattern: str) -> float:
        return sum(float(value) for value in re.findall(pattern + r"\S* ([0-9.e+]+)$", text, re.M))

    decisions = total(r"^ratelimit_decisions_total")
    fallbacks = total(r"^ratelimit_backend_errors_total")
    return f"{decisions:.0f} decisions, {fallbacks:.0f} fell back in-process"


def main() -> None:
    """All five servers run side by side; wrk loads them in turn, ROUNDS times each, and the
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
                result = load(name, base + path)
                if name not in best or result.requests_per_second > best[name].requests_per_second:
                    best[name] = result
        print_table(
            f"Rate limiting: throughput against a bare FastAPI app (best of {ROUNDS} rounds)",
            [best[name] for name, _, _, _ in cases],
        )
        for name, base, _, has_metrics in cases:
            if has_metrics:
                print(f"  {name}: {_decisions(base)}")


if __name__ == "__main__":
    main()
