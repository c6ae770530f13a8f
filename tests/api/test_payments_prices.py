"""The price catalog: PRICES_FILE or the bundled file, validated before the API starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.payments.prices import PriceCatalogError, load_price_catalog
from tests.conftest import AppHarness, make_settings

CUSTOM_PRICES = """
[prices.price_gold]
product = "Gold"
unit_amount = 2500
currency = "gbp"
"""


async def test_prices_file_replaces_the_bundled_catalog(
    app_harness: AppHarness, sqlite_url: str, tmp_path: Path
) -> None:
    prices_file = tmp_path / "prices.toml"
    prices_file.write_text(CUSTOM_PRICES)
    app = await app_harness.start(make_settings(sqlite_url, prices_file=prices_file))

    async with AppHarness.client(app) as client:
        response = await client.get("/v1/prices")

    assert response.status_code == 200
    assert response.json() == [
        {
            "id": "price_gold",
            "product": "Gold",
            "unit_amount": 2500,
            "currency": "gbp",
            "type": "one_time",
            "interval": None,
            "interval_count": None,
            "entitlements": [],
        }
    ]


def test_the_bundled_catalog_loads() -> None:
    prices = load_price_catalog().all()
    assert prices
    assert all(price.unit_amount > 0 for price in prices)


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("not toml [", "PRICES_FILE"),
        ("[prices]\n", "prices"),
        (
            '[prices.p1]\nproduct = "A"\nunit_amount = 0\ncurrency = "usd"\n',
            "prices.p1.unit_amount",
        ),
        ('[prices.p1]\nproduct = "A"\nunit_amount = 5\ncurrency = "USD"\n', "prices.p1.currency"),
        ('[prices.p1]\nproduct = "A"\nunit_amount = 5\ncurrency = "usd"\namount = 1\n', "amount"),
        ('[prices."bad id"]\nproduct = "A"\nunit_amount = 5\ncurrency = "usd"\n', "bad id"),
    ],
)
def test_a_broken_catalog_is_refused_naming_the_problem(
    tmp_path: Path, content: str, complaint: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(content)
    with pytest.raises(PriceCatalogError, match="PRICES_FILE") as raised:
        load_price_catalog(path)
    assert complaint in str(raised.value)


def test_a_missing_catalog_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PriceCatalogError, match="PRICES_FILE"):
        load_price_catalog(tmp_path / "absent.toml")


ENTITLEMENTS = '[entitlements.api_access]\ndescription = "API"\n'
RECURRING = 'product = "A"\nunit_amount = 5\ncurrency = "usd"\ntype = "recurring"\n'


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (f"[prices.plan_a]\n{RECURRING}", "prices.plan_a.interval: a recurring price needs"),
        (
            f'{ENTITLEMENTS}[prices.plan_a]\n{RECURRING}interval = "month"\n'
            'entitlements = ["api_access", "teleport"]\n',
            "prices.plan_a.entitlements: unknown entitlement 'teleport'",
        ),
        (
            f'[prices.plan_a]\n{RECURRING}interval = "month"\n'
            f'[prices.plan_b]\n{RECURRING}interval = "month"\n'
            f'[prices.plan_a]\n{RECURRING}interval = "year"\n',
            "Cannot declare ('prices', 'plan_a') twice",
        ),
        (
            f'[prices.plan_a]\n{RECURRING}interval = "month"\nstripe_price = "price_x"\n'
            f'[prices.plan_b]\n{RECURRING}interval = "year"\nstripe_price = "price_x"\n',
            "prices.plan_b.stripe_price: 'price_x' is already used by 'plan_a'",
        ),
        (
            f'[prices.plan_a]\n{RECURRING}interval = "week"\ninterval_count = 53\n',
            "prices.plan_a.interval_count: at most 52",
        ),
        (
            f'{ENTITLEMENTS}[prices.once]\nproduct = "A"\nunit_amount = 5\ncurrency = "usd"\n'
            'entitlements = ["api_access"]\n',
            "prices.once.entitlements: only a recurring price grants entitlements",
        ),
        (
            '[entitlements.api_access]\nsummary = "x"\n'
            '[prices.once]\nproduct = "A"\nunit_amount = 5\ncurrency = "usd"\n',
            "entitlements.api_access",
        ),
    ],
)
def test_a_broken_plan_is_refused_naming_the_entry(
    tmp_path: Path, content: str, complaint: str
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(content)
    with pytest.raises(PriceCatalogError) as raised:
        load_price_catalog(path)
    assert complaint in str(raised.value)


async def test_the_api_refuses_to_start_with_a_broken_plan(
    app_harness: AppHarness, sqlite_url: str, tmp_path: Path
) -> None:
    prices_file = tmp_path / "prices.toml"
    prices_file.write_text(f'[prices.plan_a]\n{RECURRING}entitlements = ["nope"]\n')
    with pytest.raises(PriceCatalogError, match=r"prices\.plan_a\.interval"):
        await app_harness.start(make_settings(sqlite_url, prices_file=prices_file))
