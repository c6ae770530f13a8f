"""API overview: traffic, errors, latency per route and in-flight requests, against the SLOs."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import (
    RATE,
    Query,
    Row,
    Step,
    build_dashboard,
    label_variable,
    stat_panel,
    summed_rate,
    time_series,
)

UID = "slipway-api-overview"
ROUTE = 'route=~"$route"'
SERVER_ERRORS = 'status=~"5.."'
# The SLIs of dashboards/alerts/slo.yml: scrapes and probes are not user requests.
USER_REQUESTS = 'route!~"/metrics|/healthz|/readyz"'


def _requests(matchers: str = "", by: str = "") -> str:
    return summed_rate("http_requests_total", ROUTE, matchers, by=by)


def _quantile(quantile: float, by: str) -> str:
    return (
        f"histogram_quantile({quantile}, sum by ({by}) "
        f"(rate(http_request_duration_seconds_bucket{{{ROUTE}}}{RATE})))"
    )


def _service_level() -> Row:
    return Row(
        "Service level",
        [
            stat_panel(
                "Requests per second",
                "All requests answered by the API, for the selected routes.",
                Query(_requests()),
                unit="reqps",
                width=4,
            ),
            stat_panel(
                "5xx ratio",
                "Share of requests answered with a 5xx over the rate interval.",
                Query(f"{_requests(SERVER_ERRORS)} / {_requests()}"),
                unit="percentunit",
                steps=[Step(None, "green"), Step(0.001, "orange"), Step(0.01, "red")],
                width=4,
            ),
            stat_panel(
                "p99 latency",
                "99th percentile of request duration across the selected routes.",
                Query(_quantile(0.99, "le")),
                unit="s",
                steps=[Step(None, "green"), Step(0.5, "orange"), Step(1.0, "red")],
                width=4,
            ),
            stat_panel(
                "In flight",
                "Requests being answered right now, summed over all API instances.",
                Query("sum(http_requests_in_progress)"),
                unit="short",
                width=4,
            ),
            stat_panel(
                "Availability, 30 days",
                "Share of user requests (not scrapes or probes) answered without a 5xx over "
                "the last 30 days. Objective: 99.9 %.",
                Query(
                    f"1 - (sum(increase(http_requests_total{{{USER_REQUESTS},{SERVER_ERRORS}}}"
                    f"[30d])) / sum(increase(http_requests_total{{{USER_REQUESTS}}}[30d])))"
                ),
                unit="percentunit",
                steps=[Step(None, "red"), Step(0.999, "green")],
                width=4,
            ),
            stat_panel(
                "Within 1 s, 30 days",
                "Share of user requests answered within 1 s over the last 30 days. "
                "Objective: 99.9 %.",
                Query(
                    "sum(increase(http_request_duration_seconds_bucket"
                    f'{{{USER_REQUESTS},le="1.0"}}[30d]))'
                    " / sum(increase(http_request_duration_seconds_count"
                    f"{{{USER_REQUESTS}}}[30d]))"
                ),
                unit="percentunit",
                steps=[Step(None, "red"), Step(0.999, "green")],
                width=4,
            ),
        ],
    )


def _traffic() -> Row:
    return Row(
        "Traffic and errors",
        [
            time_series(
                "Requests per second by route",
                "Route templates, never raw paths; requests matching no route are `unmatched`.",
                [Query(_requests(by="route"), "{{route}}")],
                unit="reqps",
            ),
            time_series(
                "Responses by status",
                "Every response by HTTP status code, stacked.",
                [Query(_requests(by="status"), "{{status}}")],
                unit="reqps",
                stacked=True,
            ),
            time_series(
                "5xx ratio by route",
                "Share of each route's requests answered with a 5xx.",
                [
                    Query(
                        f"{_requests(SERVER_ERRORS, by='route')} / {_requests(by='route')}",
                        "{{route}}",
                    )
                ],
                unit="percentunit",
            ),
            time_series(
                "4xx by route and status",
                "Client errors: validation (422), authentication (401), authorisation (403), "
                "rate limiting (429), not found (404).",
                [Query(_requests('status=~"4.."', by="route, status"), "{{route}} {{status}}")],
                unit="reqps",
            ),
        ],
    )


def _latency() -> Row:
    return Row(
        "Latency",
        [
            time_series(
                f"p{label} latency by route",
                f"{label}th percentile of request duration per route template.",
                [Query(_quantile(quantile, "route, le"), "{{route}}")],
                unit="s",
                width=8,
            )
            for label, quantile in (("50", 0.5), ("95", 0.95), ("99", 0.99))
        ],
    )


def _saturation() -> Row:
    return Row(
        "Saturation",
        [
            time_series(
                "Requests in flight by instance",
                "Requests being answered at scrape time on each API instance (ECS task).",
                [Query("sum by (instance) (http_requests_in_progress)", "{{instance}}")],
                unit="short",
                width=24,
            )
        ],
    )


def build() -> Dashboard:
    return build_dashboard(
        UID,
        "Slipway / API overview",
        "Requests, errors, latency per route and in-flight requests of the Slipway API.",
        [_service_level(), _traffic(), _latency(), _saturation()],
        variables=[label_variable("route", "Route", "http_requests_total")],
    )
