"""The server-side price catalog: `PRICES_FILE`, or the bundled `prices.toml`.

Clients send a price id (and a quantity), never an amount. A price is `one_time` (bought with
POST /v1/payments or a payment-mode Checkout) or `recurring` (a subscription plan, with its
billing interval and the entitlements it grants). Entitlements are declared once in an
`[entitlements]` table and referenced by name. The file is read and validated once at start-up,
so a broken catalog stops the deployment, naming the entry, instead of failing a checkout.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

BUNDLED_PRICES_FILE = Path(__file__).with_name("prices.toml")
# Stripe's ceiling for one PaymentIntent (eight digits in the smallest unit).
MAX_PAYMENT_AMOUNT = 99_999_999
# Stripe bills at most yearly: 12 months, 52 weeks, 365 days or 1 year per period.
MAX_INTERVAL_COUNT = {"day": 365, "week": 52, "month": 12, "year": 1}

PriceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,64}$")]
EntitlementName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
PriceType = Literal["one_time", "recurring"]
Interval = Literal["day", "week", "month", "year"]


class Price(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: PriceId
    product: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    unit_amount: int = Field(gt=0, le=MAX_PAYMENT_AMOUNT)
    currency: Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]
    type: PriceType = "one_time"
    interval: Interval | None = None
    interval_count: int | None = Field(default=None, ge=1)
    entitlements: tuple[EntitlementName, ...] = ()
    # The Stripe Price (or Plan) a recurring price subscribes to; defaults to the catalog id,
    # which a Plan created with that id satisfies.
    stripe_price: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{1,255}$")] | None = (
        None
    )

    @property
    def is_recurring(self) -> bool:
        return self.type == "recurring"

    @property
    def stripe_price_id(self) -> str:
        return self.stripe_price or self.id

    @property
    def monthly_amount(self) -> float:
        """What one unit earns per month (for MRR): the amount spread over its period."""
        if self.interval is None:
            return 0.0
        months = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}[self.interval]
        return self.unit_amount / (months * (self.interval_count or 1))


class _Entitlement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class _PricesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entitlements: dict[EntitlementName, dict[str, object]] = {}
    prices: dict[PriceId, dict[str, object]] = Field(min_length=1)


class PriceCatalogError(RuntimeError):
    """The catalog file is missing or invalid; the message names the file and the problem."""


class PriceCatalog:
    def __init__(self, prices: list[Price], entitlements: dict[str, str] | None = None) -> None:
        self._prices = {price.id: price for price in prices}
        self.entitlements = dict(entitlements or {})

    def get(self, price_id: str) -> Price | None:
        return self._prices.get(price_id)

    def all(self) -> list[Price]:
        return list(self._prices.values())

    def by_stripe_price(self, stripe_price_id: str) -> Price | None:
        """The recurring price a Stripe Price id belongs to (subscriptions name Stripe's id)."""
        for price in self._prices.values():
            if price.is_recurring and price.stripe_price_id == stripe_price_id:
                return price
        return None


def _describe(exc: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{prefix}{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )


def _price_problem(price: Price, known_entitlements: dict[str, str]) -> str | None:
    """What is wrong with a price beyond its field types, naming the field."""
    if price.is_recurring:
        if price.interval is None:
            return "interval: a recurring price needs an interval (day, week, month or year)"
        if (price.interval_count or 1) > MAX_INTERVAL_COUNT[price.interval]:
            limit = MAX_INTERVAL_COUNT[price.interval]
            return f"interval_count: at most {limit} for interval {price.interval!r}"
    else:
        if price.interval is not None or price.interval_count is not None:
            return "interval: only a recurring price has an interval"
        if price.entitlements:
            return "entitlements: only a recurring price grants entitlements"
        if price.stripe_price is not None:
            return "stripe_price: only a recurring price subscribes to a Stripe Price"
    for name in price.entitlements:
        if name not in known_entitlements:
            return f"entitlements: unknown entitlement {name!r} (declare it in [entitlements])"
    return None


def load_price_catalog(path: Path | None = None) -> PriceCatalog:
    source = path or BUNDLED_PRICES_FILE
    try:
        text = source.read_text(encoding="utf-8")
        parsed = _PricesFile.model_validate(tomllib.loads(text))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        # TOML itself refuses a table defined twice, so a duplicate price id ends here too.
        raise PriceCatalogError(f"PRICES_FILE {source}: {exc}") from None
    except ValidationError as exc:
        raise PriceCatalogError(f"PRICES_FILE {source}: {_describe(exc)}") from None
    entitlements: dict[str, str] = {}
    for name, fields in parsed.entitlements.items():
        try:
            entitlements[name] = _Entitlement.model_validate(fields).description
        except ValidationError as exc:
            problems = _describe(exc, prefix=f"entitlements.{name}.")
            raise PriceCatalogError(f"PRICES_FILE {source}: {problems}") from None
    prices: list[Price] = []
    stripe_prices: dict[str, str] = {}
    for price_id, fields in parsed.prices.items():
        try:
            price = Price.model_validate({**fields, "id": price_id})
        except ValidationError as exc:
            problems = _describe(exc, prefix=f"prices.{price_id}.")
            raise PriceCatalogError(f"PRICES_FILE {source}: {problems}") from None
        problem = _price_problem(price, entitlements)
        if problem is None and price.is_recurring:
            other = stripe_prices.setdefault(price.stripe_price_id, price_id)
            if other != price_id:
                problem = f"stripe_price: {price.stripe_price_id!r} is already used by {other!r}"
        if problem is not None:
            raise PriceCatalogError(f"PRICES_FILE {source}: prices.{price_id}.{problem}")
        prices.append(price)
    return PriceCatalog(prices, entitlements)
