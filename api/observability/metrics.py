"""Every metric the API exports, defined once. Names and labels are an interface
(docs/reference.md#metrics) that dashboards and alerts are built on; a test checks them against
both.

With PROMETHEUS_MULTIPROC_DIR set (several uvicorn/gunicorn workers) prometheus_client keeps
values in shared files; gauges then need an explicit multiprocess mode. The ops_* series come
from the database instead (api.observability.flow_metrics).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets for an API whose p99 target is a few hundred milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

http_requests_total = Counter(
    "http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
http_request_duration_seconds = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
http_requests_in_progress = Gauge(
    "http_requests_in_progress", "HTTP requests being answered.", multiprocess_mode="livesum"
)

ratelimit_decisions_total = Counter(
    "ratelimit_decisions_total", "Rate-limit decisions.", ["policy", "decision"]
)
ratelimit_backend_errors_total = Counter(
    "ratelimit_backend_errors_total",
    "Rate-limit decisions that fell back to the in-process limiter (Redis failed or slow).",
)

auth_logins_total = Counter("auth_logins_total", "Login attempts.", ["result"])
auth_refresh_total = Counter("auth_refresh_total", "Refresh-token presentations.", ["result"])
# Known outcomes start at 0: a labelled series that first appears at 1 is invisible to
# increase(), so the first reuse detection or failed login would not show on a dashboard.
for _result in ("success", "failure"):
    auth_logins_total.labels(result=_result)
for _result in ("rotated", "reuse_detected", "invalid"):
    auth_refresh_total.labels(result=_result)

payments_created_total = Counter("payments_created_total", "Payments created.", ["currency"])
payments_status_transitions_total = Counter(
    "payments_status_transitions_total", "Payment status transitions applied.", ["status"]
)
stripe_webhook_events_total = Counter(
    "stripe_webhook_events_total", "Stripe webhook deliveries.", ["type", "result"]
)
stripe_webhook_processing_seconds = Histogram(
    "stripe_webhook_processing_seconds",
    "Time to verify, store and apply a Stripe webhook delivery.",
    buckets=WEBHOOK_BUCKETS,
)

# outcome: sent (delivered to the transport), failed (refused, or still failing after every
# retry, or abandoned at shutdown), dropped (the bounded queue was full).
email_messages_total = Counter(
    "email_messages_total", "Outgoing email messages by final outcome.", ["template", "outcome"]
)
EMAIL_OUTCOMES = ("sent", "failed", "dropped")

billing_webhook_events_total = Counter(
    "billing_webhook_events_total",
    "Stripe billing events by what they did to the subscription mirror: processed, duplicate, "
    "stale (older than what the mirror holds), unknown_customer, ignored, failed.",
    ["type", "outcome"],
)
# billing_subscriptions{status} and billing_mrr{currency} are read from the subscription mirror
# at scrape time (api.billing.metrics registers them with add_scrape_source), like the ops_*
# series below. name -> (Prometheus type, label names), for the catalogue.
BILLING_SUBSCRIPTIONS = "billing_subscriptions"
BILLING_MRR = "billing_mrr"
DERIVED_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    BILLING_SUBSCRIPTIONS: ("gauge", ("status",)),
    BILLING_MRR: ("gauge", ("currency",)),
}
# The billing outcomes worth alerting on start at 0, for the same reason as the auth results.
for _type in ("checkout.session.completed", "invoice.paid", "invoice.payment_failed"):
    for _outcome in ("processed", "unknown_customer", "failed"):
        billing_webhook_events_total.labels(type=_type, outcome=_outcome)

# ops_flow_last_success_timestamp_seconds{flow} and ops_flow_runs_total{flow,result} are not
# process metrics: flows record their runs in the database and /metrics derives these series
# from it at scrape time (api.observability.flow_metrics, docs/adr/0002-flow-metrics.md).

# Every metric object above; the catalogue (what dashboards and rules may select) reads them.
API_METRICS: tuple[Counter | Gauge | Histogram, ...] = (
    http_requests_total,
    http_request_duration_seconds,
    http_requests_in_progress,
    ratelimit_decisions_total,
    ratelimit_backend_errors_total,
    auth_logins_total,
    auth_refresh_total,
    payments_created_total,
    payments_status_transitions_total,
    stripe_webhook_events_total,
    stripe_webhook_processing_seconds,
    email_messages_total,
    billing_webhook_events_total,
)
