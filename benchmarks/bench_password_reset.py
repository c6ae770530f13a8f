"""Password-reset timing (issue 15): can a client tell a known address from an unknown one?

One uvicorn worker on SQLite with one account. Requests go one at a time, known and unknown
interleaved (so drift on a shared machine hits both alike), as an attacker timing answers
would send them. For reference the same is done for login (right address with a wrong
password against an unknown address), whose equal work is argon2's. Printed: median and p90
latency per case, and the known/unknown ratio of each (goal: 1.00 within the noise that
login shows). A reset for the known address also writes a token and an email, after the
answer: only the answer's timing is what a client sees.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from api.auth.keys import generate_private_key_pem
from benchmarks.bench_auth import _migrate
from benchmarks.harness import serve

HERE = Path(__file__).resolve().parent
PASSWORD = "benchmark-password-not-common-42"  # noqa: S105 - a throwaway benchmark account
KNOWN = "known@example.com"
UNKNOWN = "nobody@example.com"
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "300"))


def _timed(client: httpx.Client, path: str, body: dict[str, str], expected: int) -> float:
    started = time.perf_counter()
    response = client.post(path, json=body)
    elapsed = time.perf_counter() - started
    assert response.status_code == expected, response.text
    return elapsed * 1000


def _pair(
    client: httpx.Client, path: str, known: dict[str, str], unknown: dict[str, str], status: int
) -> tuple[list[float], list[float]]:
    known_ms: list[float] = []
    unknown_ms: list[float] = []
    for index in range(SAMPLES):
        # Alternate which goes first, so neither always follows the other's background work.
        order = [(known, known_ms), (unknown, unknown_ms)]
        for body, sink in order if index % 2 == 0 else reversed(order):
            sink.append(_timed(client, path, body, status))
    return known_ms, unknown_ms


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def _report(name: str, known: list[float], unknown: list[float]) -> None:
    ratio = statistics.median(known) / statistics.median(unknown)
    print(
        f"{name:<34} {statistics.median(known):>9.2f} {_p90(known):>8.2f} "
        f"{statistics.median(unknown):>11.2f} {_p90(unknown):>8.2f} {ratio:>8.3f}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite+aiosqlite:///{directory}/bench.db"
        _migrate(database_url)
        env = {
            "APP_ENV": "development",
            "DATABASE_URL": database_url,
            "JWT_PRIVATE_KEYS": generate_private_key_pem(),
            "RATE_LIMITS_FILE": str(HERE / "reset_policies.toml"),
            "EMAIL_OUTBOX_DIR": f"{directory}/outbox",
            "REDIS_URL": "",
        }
        with (
            serve("api.main:app", env, ready_path="/healthz") as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            account = {"email": KNOWN, "password": PASSWORD}
            client.post("/v1/auth/register", json=account).raise_for_status()
            reset = _pair(
                client, "/v1/auth/password-reset", {"email": KNOWN}, {"email": UNKNOWN}, 202
            )
            wrong = {"email": KNOWN, "password": "not-the-password-123"}
            login = _pair(
                client, "/v1/auth/login", wrong, {"email": UNKNOWN, "password": PASSWORD}, 401
            )
    print(
        f"\nAccount enumeration by timing: {SAMPLES} requests per case, one at a time, "
        "interleaved, one uvicorn worker (SQLite); goal: known/unknown = 1.00 within login's noise"
    )
    print(f"{'case':<34} {'known p50':>9} {'p90':>8} {'unknown p50':>11} {'p90':>8} {'ratio':>8}")
    _report("POST /v1/auth/password-reset", *reset)
    _report("POST /v1/auth/login (reference)", *login)


if __name__ == "__main__":
    main()
