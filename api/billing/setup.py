"""Wires billing into an app. It shares the payments runtime (catalog, Stripe gateway)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from api.billing import routes
from api.billing.entitlements import SUBSCRIPTION_FACET
from api.billing.metrics import billing_unavailable, collect_billing
from api.observability.routes import add_scrape_source
from api.openapi_document import constrain_property
from api.payments.dependencies import runtime_for


def document_billing_inputs(app: FastAPI, document: dict[str, Any]) -> None:
    """What only this deployment knows, stated in the schema so that a request the schema
    allows is one the API accepts: which prices each operation takes (plans are recurring,
    Checkout sells both) and the origins redirect URLs may point at (BILLING_REDIRECT_ORIGINS;
    with none configured every redirect is refused)."""
    prices = runtime_for(app).catalog.all()
    recurring = sorted(price.id for price in prices if price.is_recurring)
    for schema in ("SubscriptionCreate", "PlanChange"):
        constrain_property(document, schema, "price_id", enum=recurring)
    constrain_property(document, "CheckoutCreate", "price_id", enum=sorted(p.id for p in prices))
    origins = app.state.settings.billing_redirect_origins
    if origins:
        # The origin exactly (check_redirect compares scheme://host[:port]), then a path, query
        # or fragment: `https://allowed.example@evil.example` does not match.
        alternatives = "|".join(re.escape(origin) for origin in origins)
        pattern = f"^(?:{alternatives})(?:[/?#].*)?$"
        for schema, field in (
            ("CheckoutCreate", "success_url"),
            ("CheckoutCreate", "cancel_url"),
            ("PortalCreate", "return_url"),
        ):
            constrain_property(document, schema, field, pattern=pattern)


def install_billing(app: FastAPI) -> None:
    app.include_router(routes.router)
    # Entitlements are read on every request of /v1/users/me and of entitled routes: cached
    # with the user, read with the user on a miss.
    app.state.database.user_facets.append(SUBSCRIPTION_FACET)
    add_scrape_source(app, collect_billing, billing_unavailable)
    app.state.openapi_refinements.append(document_billing_inputs)
