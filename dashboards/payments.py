"""Payments: payments created, status transitions, Stripe webhook results and latency, and
billing (subscriptions by status, MRR by currency, billing events by outcome)."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import (
    RATE,
    Query,
    Row,
    Step,
    build_dashboard,
    stat_panel,
    summed_rate,
    time_series,
)

UID = "slipway-payments"
REJECTED = 'result=~"failed|invalid_signature"'


def _transitions_24h(status: str) -> Query:
    return Query(f'sum(increase(payments_status_transitions_total{{status="{status}"}}[24h]))')


def _overview() -> Row:
    return Row(
        "Overview",
        [
            stat_panel(
                "Payments created, 24 h",
                "PaymentIntents created through POST /v1/payments (idempotent replays excluded).",
                Query("sum(increase(payments_created_total[24h]))"),
                unit="short",
            ),
            stat_panel(
                "Succeeded, 24 h",
                "Payments that moved to `succeeded` (from Stripe's events).",
                _transitions_24h("succeeded"),
                unit="short",
            ),
            stat_panel(
                "Failed, 24 h",
                "Payments that moved to `failed`.",
                _transitions_24h("failed"),
                unit="short",
                steps=[Step(None, "green"), Step(1, "orange")],
            ),
            stat_panel(
                "Disputes, 24 h",
                "Payments that moved to `disputed`: each needs an answer in Stripe.",
                _transitions_24h("disputed"),
                unit="short",
                steps=[Step(None, "green"), Step(1, "red")],
            ),
        ],
    )


def _payments() -> Row:
    return Row(
        "Payments",
        [
            time_series(
                "Payments created by currency",
                "New payments per currency.",
                [
                    Query(
                        f"sum by (currency) (rate(payments_created_total{RATE}))",
                        "{{currency}}",
                    )
                ],
                unit="ops",
            ),
            time_series(
                "Status transitions",
                "Payment status changes applied from Stripe events, by the status reached.",
                [
                    Query(
                        f"sum by (status) (rate(payments_status_transitions_total{RATE}))",
                        "{{status}}",
                    )
                ],
                unit="ops",
                stacked=True,
            ),
        ],
    )


def _webhook() -> Row:
    quantiles = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
    return Row(
        "Stripe webhook",
        [
            time_series(
                "Deliveries by result",
                "`processed`, `duplicate` (already seen, acknowledged without effect), "
                "`ignored` (event type not handled), `failed` (answered 5xx so that Stripe "
                "retries) and `invalid_signature` (refused with 400).",
                [
                    Query(
                        f"sum by (result) (rate(stripe_webhook_events_total{RATE}))",
                        "{{result}}",
                    )
                ],
                unit="ops",
                stacked=True,
            ),
            time_series(
                "Deliveries by event type",
                "Webhook deliveries per Stripe event type.",
                [
                    Query(
                        f"sum by (type) (rate(stripe_webhook_events_total{RATE}))",
                        "{{type}}",
                    )
                ],
                unit="ops",
            ),
            time_series(
                "Failed and refused deliveries",
                "Deliveries that failed to process or carried an invalid signature, by event "
                "type. Above 10 % of deliveries the StripeWebhookDeliveriesFailing alert pages.",
                [
                    Query(
                        "sum by (type, result) "
                        f"(rate(stripe_webhook_events_total{{{REJECTED}}}{RATE}))",
                        "{{type}} {{result}}",
                    )
                ],
                unit="ops",
            ),
            time_series(
                "Webhook processing latency",
                "Time to verify, store and apply one delivery.",
                [
                    Query(
                        f"histogram_quantile({quantile}, sum by (le) "
                        f"(rate(stripe_webhook_processing_seconds_bucket{RATE})))",
                        label,
                    )
                    for label, quantile in quantiles
                ],
                unit="s",
            ),
        ],
    )


def _billing() -> Row:
    return Row(
        "Billing",
        [
            stat_panel(
                "Active subscriptions",
                "Subscriptions whose status is `active` in the mirror the webhook keeps.",
                Query('max(billing_subscriptions{status="active"})'),
                unit="short",
            ),
            stat_panel(
                "Past due",
                "Renewals Stripe is retrying: entitled through the grace period "
                "(BILLING_GRACE_PERIOD_DAYS), then not.",
                Query('max(billing_subscriptions{status="past_due"})'),
                unit="short",
                steps=[Step(None, "green"), Step(1, "orange")],
            ),
            stat_panel(
                "Billing events for unknown customers, 24 h",
                "Subscription, invoice and Checkout events about a Stripe Customer that is not "
                "one of ours (another integration on the account, or a deleted user).",
                Query(
                    'sum(increase(billing_webhook_events_total{outcome="unknown_customer"}[24h]))'
                ),
                unit="short",
                steps=[Step(None, "green"), Step(1, "orange")],
            ),
            stat_panel(
                "Failed billing events, 24 h",
                "Billing events answered 5xx (Stripe retries them).",
                Query('sum(increase(billing_webhook_events_total{outcome="failed"}[24h]))'),
                unit="short",
                steps=[Step(None, "green"), Step(1, "red")],
            ),
            time_series(
                "Monthly recurring revenue by currency",
                "Active and past-due subscriptions, price times quantity spread over the billing "
                "period, in the currency's smallest unit (cents for usd). Every API instance "
                "reads the same mirror, hence max.",
                [Query("max by (currency) (billing_mrr)", "{{currency}}")],
                unit="none",
            ),
            time_series(
                "Subscriptions by status",
                "The subscription mirror by Stripe status.",
                [Query("max by (status) (billing_subscriptions)", "{{status}}")],
                unit="short",
                stacked=True,
            ),
            time_series(
                "Billing events by outcome",
                "`processed`, `duplicate`, `stale` (older than what the mirror holds: Stripe "
                "does not order events), `unknown_customer`, `ignored` and `failed`.",
                [Query(summed_rate("billing_webhook_events_total", by="outcome"), "{{outcome}}")],
                unit="ops",
                stacked=True,
                width=24,
            ),
        ],
    )


def build() -> Dashboard:
    return build_dashboard(
        UID,
        "Slipway / Payments",
        "Payments created, status transitions, Stripe webhook results and latency, and "
        "billing: subscriptions, MRR and the subscription mirror's events.",
        [_overview(), _payments(), _webhook(), _billing()],
    )
