"""Stripe Billing for the tests: our own small server in front of localstripe.

localstripe 1.15.10 (checked call by call with stripe-python) keeps Customers, PaymentIntents
and events, and this server forwards every request it does not handle to it. It lacks what
Slipway's billing needs, so this server answers those calls itself:

- Prices: localstripe has Plans only (`/v1/prices` is 404) and creates a subscription only
  from `items[][plan]`; this server subscribes to `items[][price]`.
- `payment_behavior=default_incomplete` (localstripe: 400): localstripe charges a card
  already on the Customer at once and refuses a Customer without one, so it can never leave a
  subscription `incomplete` awaiting the customer's confirmation (`confirmation_secret`).
- `proration_behavior` on a subscription update (localstripe: 500).
- Events: localstripe never emits `customer.subscription.updated`, `invoice.paid`,
  `invoice.payment_failed` or `invoice.finalized` (it emits `invoice.payment_succeeded`), and
  its events list refuses the `types` filter.
- Checkout Sessions and billing-portal sessions (localstripe: 404).
- Idempotency-Key replay (localstripe makes a new object for every create).

Subscriptions, their invoices, Checkout and portal sessions live here; Customers stay in
localstripe (a subscription for a Customer localstripe does not know is a 404, as at Stripe).
Objects use the shapes of stripe-python's pinned API version (the current period on the
subscription item, an invoice's subscription under `parent`). What Stripe does on its own
(the customer paying, a renewal failing, the period ending, a change in the portal) is done by
the test through methods below, which record the events Stripe would send; `event()` hands
one out for the test to deliver, `events` keeps them all for `/v1/events`.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.payments.prices import PriceCatalog

MONTH_SECONDS = 30 * 86_400


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`items[0][price]=x`) back into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(value: Any) -> Any:
        if isinstance(value, dict):
            converted = {k: lists(v) for k, v in value.items()}
            if converted and all(k.isdigit() for k in converted):
                return [converted[k] for k in sorted(converted, key=int)]
            return converted
        return value

    result: dict[str, Any] = lists(root)
    return result


class _StampDate(BaseHTTPMiddleware):
    """Every answer carries an exact Date header, as Stripe's do."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["Date"] = formatdate(time.time(), usegmt=True)
        return response


def _error(status: int, message: str, error_type: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"type": error_type, "message": message}}, status_code=status)


@dataclass
class BillingStripe:
    catalog: PriceCatalog
    localstripe_url: str
    url: str = ""
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkout_sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    portal_sessions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    _replays: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)

    # --- HTTP ---------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/subscriptions", self._subscriptions, methods=["GET", "POST"]),
                Route(
                    "/v1/subscriptions/{id}",
                    self._subscription,
                    methods=["GET", "POST", "DELETE"],
                ),
                Route("/v1/invoices/{id}", self._invoice, methods=["GET"]),
                Route("/v1/checkout/sessions", self._create_checkout, methods=["POST"]),
                Route("/v1/billing_portal/sessions", self._create_portal, methods=["POST"]),
                Route("/v1/events", self._events, methods=["GET"]),
                Route("/{path:path}", self._forward, methods=["GET", "POST", "DELETE"]),
            ],
            middleware=[Middleware(_StampDate)],
        )

    async def _forward(self, request: Request) -> Response:
        headers = {
            name: value
            for name, value in request.headers.items()
            if name in ("authorization", "content-type", "idempotency-key", "stripe-version")
        }
        async with httpx.AsyncClient(base_url=self.localstripe_url, timeout=10) as client:
            answer = await client.request(
                request.method,
                request.url.path,
                params=str(request.query_params),
                content=await request.body(),
                headers=headers,
            )
        return Response(
            answer.content,
            status_code=answer.status_code,
            media_type=answer.headers.get("content-type"),
        )

    async def _params(self, request: Request) -> dict[str, Any]:
        form = await request.form()
        return unflatten([(key, str(value)) for key, value in form.multi_items()])

    def _replayed(self, request: Request, params: dict[str, Any]) -> JSONResponse | None:
        key = request.headers.get("idempotency-key")
        if key is None or key not in self._replays:
            return None
        first_params, answer = self._replays[key]
        if first_params != params:
            return _error(400, "Keys for idempotent requests", "idempotency_error")
        return JSONResponse(answer, headers={"Idempotent-Replayed": "true"})

    def _remember(self, request: Request, params: dict[str, Any], answer: dict[str, Any]) -> None:
        key = request.headers.get("idempotency-key")
        if key is not None:
            self._replays[key] = (params, answer)

    async def _customer_exists(self, customer_id: str) -> bool:
        async with httpx.AsyncClient(base_url=self.localstripe_url, timeout=10) as client:
            answer = await client.get(
                f"/v1/customers/{customer_id}", headers={"Authorization": "Bearer sk_test_x"}
            )
        return answer.status_code == 200

    async def _subscriptions(self, request: Request) -> Response:
        if request.method == "GET":
            created_gte = int(request.query_params.get("created[gte]", "0"))
            found = [s for s in self.subscriptions.values() if s["created"] >= created_gte]
            found.sort(key=lambda s: s["created"], reverse=True)
            return JSONResponse({"object": "list", "data": found, "has_more": False})
        params = await self._params(request)
        replay = self._replayed(request, params)
        if replay is not None:
            return replay
        if params.get("payment_behavior") != "default_incomplete":
            return _error(400, "only default_incomplete is emulated")
        if not await self._customer_exists(params["customer"]):
            return _error(404, f"No such customer: '{params['customer']}'")
        price = self._price(params["items"][0]["price"])
        if price is None:
            return _error(400, f"No such price: '{params['items'][0]['price']}'")
        subscription = self._new_subscription(params["customer"], price, params.get("metadata"))
        invoice = self._new_invoice(subscription, "subscription_create")
        subscription["latest_invoice"] = invoice["id"]
        self._record("invoice.finalized", invoice)
        self._record("customer.subscription.created", subscription)
        answer = {
            **subscription,
            "latest_invoice": {
                **invoice,
                "confirmation_secret": {
                    "client_secret": f"pi_{uuid.uuid4().hex[:24]}_secret_x",
                    "type": "payment_intent",
                },
            },
        }
        self._remember(request, params, answer)
        return JSONResponse(answer)

    async def _subscription(self, request: Request) -> Response:
        subscription = self.subscriptions.get(request.path_params["id"])
        if subscription is None:
            return _error(404, f"No such subscription: '{request.path_params['id']}'")
        if request.method == "GET":
            return JSONResponse(subscription)
        if request.method == "DELETE":
            self.end(subscription["id"])
            return JSONResponse(self.subscriptions[subscription["id"]])
        params = await self._params(request)
        if "cancel_at_period_end" in params:
            subscription["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
        if "items" in params:
            item = params["items"][0]
            if item.get("id") != subscription["items"]["data"][0]["id"]:
                return _error(400, "the item does not belong to the subscription")
            price = self._price(item["price"])
            if price is None:
                return _error(400, f"No such price: '{item['price']}'")
            subscription["items"]["data"][0]["price"] = price
            if params.get("proration_behavior") == "create_prorations":
                subscription["pending_proration"] = True
        self._record("customer.subscription.updated", subscription)
        return JSONResponse(subscription)

    async def _invoice(self, request: Request) -> Response:
        invoice = self.invoices.get(request.path_params["id"])
        if invoice is None:
            return _error(404, f"No such invoice: '{request.path_params['id']}'")
        return JSONResponse(invoice)

    async def _create_checkout(self, request: Request) -> Response:
        params = await self._params(request)
        if not await self._customer_exists(params["customer"]):
            return _error(404, f"No such customer: '{params['customer']}'")
        session_id = _new_id("cs_test")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "customer": params["customer"],
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "subscription": None,
            "payment_intent": None,
            "amount_total": None,
            "currency": None,
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "line_items": params["line_items"],
            "created": int(time.time()),
        }
        self.checkout_sessions[session_id] = session
        return JSONResponse(session)

    async def _create_portal(self, request: Request) -> Response:
        params = await self._params(request)
        if not await self._customer_exists(params["customer"]):
            return _error(404, f"No such customer: '{params['customer']}'")
        session_id = _new_id("bps")
        session = {
            "id": session_id,
            "object": "billing_portal.session",
            "customer": params["customer"],
            "return_url": params["return_url"],
            "url": f"https://billing.stripe.com/p/session/{session_id}",
        }
        self.portal_sessions.append(session)
        return JSONResponse(session)

    async def _events(self, request: Request) -> Response:
        async with httpx.AsyncClient(base_url=self.localstripe_url, timeout=10) as client:
            answer = await client.get(
                "/v1/events",
                params=str(request.query_params),
                headers={"Authorization": request.headers.get("authorization", "")},
            )
        theirs = answer.json()["data"]
        created_gte = int(request.query_params.get("created[gte]", "0"))
        # Newest first, as Stripe lists them (within a second too).
        ours = [event for event in reversed(self.events) if event["created"] >= created_gte]
        merged = sorted([*theirs, *ours], key=lambda event: event["created"], reverse=True)
        return JSONResponse({"object": "list", "data": merged, "has_more": False})

    # --- objects --------------------------------------------------------------------------

    def _price(self, price_id: str) -> dict[str, Any] | None:
        price = self.catalog.by_stripe_price(price_id)
        if price is None or price.interval is None:
            return None
        return {
            "id": price_id,
            "object": "price",
            "currency": price.currency,
            "unit_amount": price.unit_amount,
            "type": "recurring",
            "recurring": {"interval": price.interval, "interval_count": price.interval_count or 1},
        }

    def _new_subscription(
        self, customer_id: str, price: dict[str, Any], metadata: dict[str, str] | None
    ) -> dict[str, Any]:
        now = int(time.time())
        subscription: dict[str, Any] = {
            "id": _new_id("sub"),
            "object": "subscription",
            "customer": customer_id,
            "status": "incomplete",
            "created": now,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "ended_at": None,
            "trial_end": None,
            "metadata": metadata or {},
            "latest_invoice": None,
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": _new_id("si"),
                        "object": "subscription_item",
                        "price": price,
                        "quantity": 1,
                        "current_period_start": now,
                        "current_period_end": now + MONTH_SECONDS,
                    }
                ],
            },
        }
        self.subscriptions[subscription["id"]] = subscription
        return subscription

    def _new_invoice(self, subscription: dict[str, Any], reason: str) -> dict[str, Any]:
        price = subscription["items"]["data"][0]["price"]
        invoice: dict[str, Any] = {
            "id": _new_id("in"),
            "object": "invoice",
            "customer": subscription["customer"],
            "status": "open",
            "created": int(time.time()),
            "currency": price["currency"],
            "amount_due": price["unit_amount"],
            "amount_paid": 0,
            "billing_reason": reason,
            "hosted_invoice_url": "https://invoice.stripe.com/i/test",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": subscription["id"]},
            },
        }
        self.invoices[invoice["id"]] = invoice
        return invoice

    def _record(self, event_type: str, data_object: dict[str, Any]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": _new_id("evt"),
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": _copy(data_object)},
        }
        self.events.append(event)
        return event

    def event(self, event_type: str, object_id: str) -> dict[str, Any]:
        """The latest event of `event_type` about `object_id`, as Stripe would deliver it."""
        for event in reversed(self.events):
            if event["type"] == event_type and event["data"]["object"]["id"] == object_id:
                found: dict[str, Any] = event
                return found
        raise AssertionError(f"no {event_type} for {object_id}")

    # --- what Stripe does on its own ------------------------------------------------------

    def pay(self, subscription_id: str) -> None:
        """The customer confirms the payment (or a renewal succeeds): invoice paid, active."""
        subscription = self.subscriptions[subscription_id]
        invoice = self.invoices[subscription["latest_invoice"]]
        invoice.update(status="paid", amount_paid=invoice["amount_due"])
        self._record("invoice.paid", invoice)
        subscription["status"] = "active"
        self._record("customer.subscription.updated", subscription)

    def fail_renewal(self, subscription_id: str) -> None:
        """The next period's invoice cannot be charged: past_due while Stripe retries."""
        subscription = self.subscriptions[subscription_id]
        invoice = self._new_invoice(subscription, "subscription_cycle")
        subscription["latest_invoice"] = invoice["id"]
        self._record("invoice.payment_failed", invoice)
        subscription["status"] = "past_due"
        self._record("customer.subscription.updated", subscription)

    def end(self, subscription_id: str) -> None:
        """The period ends on a subscription set to cancel (or it is canceled now)."""
        subscription = self.subscriptions[subscription_id]
        now = int(time.time())
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        self._record("customer.subscription.deleted", subscription)

    def portal_cancel(self, subscription_id: str) -> None:
        """The customer cancels in the portal: set to cancel at the period's end."""
        subscription = self.subscriptions[subscription_id]
        subscription["cancel_at_period_end"] = True
        self._record("customer.subscription.updated", subscription)

    def complete_checkout(self, session_id: str) -> dict[str, Any]:
        """The customer pays on the Checkout page: a paid, active subscription."""
        session = self.checkout_sessions[session_id]
        if session["mode"] == "subscription":
            price = self._price(session["line_items"][0]["price"])
            assert price is not None
            subscription = self._new_subscription(session["customer"], price, session["metadata"])
            invoice = self._new_invoice(subscription, "subscription_create")
            subscription["latest_invoice"] = invoice["id"]
            self._record("customer.subscription.created", subscription)
            self.pay(subscription["id"])
            session["subscription"] = subscription["id"]
        else:
            line = session["line_items"][0]
            session["payment_intent"] = _new_id("pi")
            session["amount_total"] = int(line["price_data"]["unit_amount"]) * int(line["quantity"])
            session["currency"] = line["price_data"]["currency"]
        session.update(status="complete", payment_status="paid")
        return self._record("checkout.session.completed", session)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value
