"""scripts/seed_tester.py: a tester's user and sample payments, through the public API, safe to
run twice (SECURITY.md, penetration-test brief)."""

from __future__ import annotations

import httpx

from scripts.seed_tester import seed
from tests.api.auth_helpers import STRONG_PASSWORD

pytest_plugins = ("tests.api.stripe_emulator",)


async def test_seeding_twice_gives_one_user_and_the_same_payments(
    payments_client: httpx.AsyncClient,
) -> None:
    email = "tester@example.com"
    first = await seed(payments_client, email, STRONG_PASSWORD, payments=2)
    second = await seed(payments_client, email, STRONG_PASSWORD, payments=2)

    assert first[0] == f"created user {email}"
    assert second[0] == f"found user {email}"
    payment_ids = [line.split()[1] for line in first[1:]]
    assert len(set(payment_ids)) == 2
    assert [line.split()[1] for line in second[1:]] == payment_ids
    assert all(line.endswith("(already seeded)") for line in second[1:])
    assert not any(STRONG_PASSWORD in line for line in first + second)

    login = await payments_client.post(
        "/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
    )
    token = login.json()["access_token"]
    listed = await payments_client.get("/v1/payments", headers={"Authorization": f"Bearer {token}"})
    assert sorted(item["id"] for item in listed.json()["items"]) == sorted(payment_ids)
