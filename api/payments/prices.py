"""The server-side price catalog: `PRICES_FILE`, or the bundled `prices.toml`.

Clients send a price id and a quantity, never an amount. The file is read and validated once
at start-up, so a broken catalog stops the deployment instead of failing a checkout.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

BUNDLED_PRICES_FILE = Path(__file__).with_name("prices.toml")
# Stripe's ceiling for one PaymentIntent (eight digits in the smallest unit).
MAX_PAYMENT_AMOUNT = 99_999_999

PriceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]


class Price(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: PriceId
    product: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    unit_amount: int = Field(gt=0, le=MAX_PAYMENT_AMOUNT)
    currency: Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]


class _PricesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prices: dict[PriceId, dict[str, object]] = Field(min_length=1)


class PriceCatalogError(RuntimeError):
    """The catalog file is missing or invalid; the message names the file and the problem."""


class PriceCatalog:
    def __init__(self, prices: list[Price]) -> None:
        self._prices = {price.id: price for price in prices}

    def get(self, price_id: str) -> Price | None:
        return self._prices.get(price_id)

    def all(self) -> list[Price]:
        return list(self._prices.values())


def _describe(exc: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{prefix}{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )


def load_price_catalog(path: Path | None = None) -> PriceCatalog:
    source = path or BUNDLED_PRICES_FILE
    try:
        parsed = _PricesFile.model_validate(tomllib.loads(source.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PriceCatalogError(f"PRICES_FILE {source}: {exc}") from None
    except ValidationError as exc:
        raise PriceCatalogError(f"PRICES_FILE {source}: {_describe(exc)}") from None
    prices = []
    for price_id, fields in parsed.prices.items():
        try:
            prices.append(Price.model_validate({**fields, "id": price_id}))
        except ValidationError as exc:
            problems = _describe(exc, prefix=f"prices.{price_id}.")
            raise PriceCatalogError(f"PRICES_FILE {source}: {problems}") from None
    return PriceCatalog(prices)
