"""Rate limiting: decisions and refusals per policy, and fallbacks when Redis fails."""

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

UID = "slipway-rate-limiting"
POLICY = 'policy=~"$policy"'
LIMITED = 'decision="limited"'


def _decisions(matchers: str = "", by: str = "") -> str:
    return summed_rate("ratelimit_decisions_total", POLICY, matchers, by=by)


def _overview() -> Row:
    return Row(
        "Overview",
        [
            stat_panel(
                "Decisions per second",
                "Rate-limit decisions for the selected policies (one per limited request).",
                Query(_decisions()),
                unit="reqps",
            ),
            stat_panel(
                "Refused share",
                "Share of decisions that refused the request (429).",
                Query(f"{_decisions(LIMITED)} / {_decisions()}"),
                unit="percentunit",
                steps=[Step(None, "green"), Step(0.05, "orange"), Step(0.1, "red")],
            ),
            stat_panel(
                "Refusals, 24 h",
                "Requests refused with 429 over the last 24 hours.",
                Query(f"sum(increase(ratelimit_decisions_total{{{POLICY},{LIMITED}}}[24h]))"),
                unit="short",
            ),
            stat_panel(
                "Fallback decisions, 24 h",
                "Decisions made by the in-process limiter because Redis failed or took longer "
                "than 50 ms. Non-zero means limits were held per instance for a while.",
                Query("sum(increase(ratelimit_backend_errors_total[24h]))"),
                unit="short",
                steps=[Step(None, "green"), Step(1, "red")],
            ),
        ],
    )


def _policies() -> Row:
    return Row(
        "Policies",
        [
            time_series(
                "Decisions by policy and outcome",
                "Allowed and limited decisions per policy.",
                [Query(_decisions(by="policy, decision"), "{{policy}} {{decision}}")],
                unit="reqps",
            ),
            time_series(
                "Hits (refusals) by policy",
                "Requests refused with 429, per policy: `login` rising is typically credential "
                "stuffing.",
                [Query(_decisions(LIMITED, by="policy"), "{{policy}}")],
                unit="reqps",
            ),
            time_series(
                "Refused share by policy",
                "Share of each policy's decisions that were refusals; the RateLimitHitsSurging "
                "alert fires above 10 % (and over one refusal per second).",
                [
                    Query(
                        f"{_decisions(LIMITED, by='policy')} / {_decisions(by='policy')}",
                        "{{policy}}",
                    )
                ],
                unit="percentunit",
            ),
            time_series(
                "429 responses by route",
                "What clients saw: refusals by route template.",
                [
                    Query(
                        f'sum by (route) (rate(http_requests_total{{status="429"}}{RATE}))',
                        "{{route}}",
                    )
                ],
                unit="reqps",
            ),
        ],
    )


def _backend() -> Row:
    return Row(
        "Backend",
        [
            time_series(
                "Fallback decisions by instance",
                "Decisions taken in-process because Redis errored or was slower than 50 ms, "
                "per API instance. The RateLimitRedisFallbackActive alert fires when this stays "
                "above zero for 5 minutes.",
                [
                    Query(
                        f"sum by (instance) (rate(ratelimit_backend_errors_total{RATE}))",
                        "{{instance}}",
                    )
                ],
                unit="ops",
                width=24,
            )
        ],
    )


def build() -> Dashboard:
    return build_dashboard(
        UID,
        "Slipway / Rate limiting",
        "Rate-limit decisions and refusals per policy, and Redis fallbacks.",
        [_overview(), _policies(), _backend()],
        variables=[label_variable("policy", "Policy", "ratelimit_decisions_total")],
    )
