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
        {"id": "price_gold", "product": "Gold", "unit_amount": 2500, "currency": "gbp"}
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
