"""Seed a penetration tester's account in a deployment (staging): a user and sample payments.

    printf '%s\\n' "$TESTER_PASSWORD" | uv run python -m scripts.seed_tester \\
        --api-url https://api.staging.example.com --email tester@example.com

Everything goes through the public API, as the tester will: the user registers (or, on a
second run, logs in), then creates `--payments` payments in Stripe test mode. Re-running is
safe: each sample payment has an Idempotency-Key derived from the account and its number, so
the API replays it instead of creating another. The admin account is created separately with
`python -m api.auth create-admin` (SECURITY.md). The password is the first line of standard
input, never an argument (other users of the machine see those), and is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from collections.abc import Sequence

import httpx

DEFAULT_PAYMENTS = 3
TIMEOUT_SECONDS = 30


class SeedError(RuntimeError):
    """The API refused a step; the message says which, without the password."""


def _idempotency_key(email: str, number: int) -> str:
    return "seed-" + hashlib.sha256(f"{email}\n{number}".encode()).hexdigest()[:32]


async def _access_token(http: httpx.AsyncClient, email: str, password: str) -> tuple[str, bool]:
    registered = await http.post("/v1/auth/register", json={"email": email, "password": password})
    if registered.status_code not in (201, 409):
        raise SeedError(f"registration answered {registered.status_code}: {registered.text}")
    login = await http.post("/v1/auth/login", json={"email": email, "password": password})
    if login.status_code != 200:
        raise SeedError(f"login answered {login.status_code}: {login.text}")
    return login.json()["access_token"], registered.status_code == 201


async def seed(http: httpx.AsyncClient, email: str, password: str, payments: int) -> list[str]:
    """Returns one line per step, for the operator."""
    token, created = await _access_token(http, email, password)
    lines = [f"{'created' if created else 'found'} user {email}"]
    # Recurring prices are subscribed to through billing, not paid once.
    prices = [
        price for price in (await http.get("/v1/prices")).json() if price["type"] == "one_time"
    ]
    if payments and not prices:
        raise SeedError("the price catalog has no one-time price")
    for number in range(payments):
        price = prices[number % len(prices)]
        response = await http.post(
            "/v1/payments",
            json={"price_id": price["id"], "quantity": 1},
            headers={
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": _idempotency_key(email, number),
            },
        )
        if response.status_code != 201:
            raise SeedError(
                f"payment {number + 1} answered {response.status_code}: {response.text}"
            )
        replayed = response.headers.get("idempotent-replayed") == "true"
        payment = response.json()
        lines.append(
            f"payment {payment['id']} {price['id']} {payment['status']}"
            + (" (already seeded)" if replayed else "")
        )
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.seed_tester", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--api-url", required=True, help="the deployment's API base URL")
    parser.add_argument("--email", required=True)
    parser.add_argument("--payments", type=int, default=DEFAULT_PAYMENTS)
    return parser


async def _run(args: argparse.Namespace, password: str) -> list[str]:
    async with httpx.AsyncClient(base_url=args.api_url, timeout=TIMEOUT_SECONDS) as http:
        return await seed(http, args.email, password, args.payments)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        lines = asyncio.run(_run(args, password))
    except (SeedError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
