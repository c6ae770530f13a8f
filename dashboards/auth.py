"""Authentication: logins by result, refresh-token rotation and reuse detections."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.panels import RATE, Query, Row, Step, build_dashboard, stat_panel, time_series

UID = "slipway-auth"


def _overview() -> Row:
    return Row(
        "Overview",
        [
            stat_panel(
                "Logins per second",
                "Login attempts (JSON login and the OAuth2 token form), whatever the result.",
                Query(f"sum(rate(auth_logins_total{RATE}))"),
                unit="reqps",
            ),
            stat_panel(
                "Failed logins, 1 h",
                "Unknown email or wrong password over the last hour.",
                Query('sum(increase(auth_logins_total{result="failure"}[1h]))'),
                unit="short",
            ),
            stat_panel(
                "Refresh-token reuse, 24 h",
                "A spent refresh token presented again: the whole session (token family) was "
                "revoked. Each one is a stolen token or a client that lost a response.",
                Query('sum(increase(auth_refresh_total{result="reuse_detected"}[24h]))'),
                unit="short",
                steps=[Step(None, "green"), Step(1, "red")],
            ),
            stat_panel(
                "Invalid refresh tokens, 1 h",
                "Refresh tokens that were unknown, expired or revoked over the last hour.",
                Query('sum(increase(auth_refresh_total{result="invalid"}[1h]))'),
                unit="short",
            ),
        ],
    )


def _logins() -> Row:
    return Row(
        "Logins",
        [
            time_series(
                "Logins by result",
                "Successful and failed login attempts.",
                [Query(f"sum by (result) (rate(auth_logins_total{RATE}))", "{{result}}")],
                unit="reqps",
                stacked=True,
            ),
            time_series(
                "Failed login share",
                "Share of login attempts that failed. A jump with a flat success rate is "
                "usually credential stuffing; see the login policy on the rate-limiting "
                "dashboard.",
                [
                    Query(
                        f'sum(rate(auth_logins_total{{result="failure"}}{RATE}))'
                        f" / sum(rate(auth_logins_total{RATE}))",
                        "failed",
                    )
                ],
                unit="percentunit",
            ),
            time_series(
                "Login refusals by the rate limiter",
                "Login and token requests refused with 429 by the `login` policy "
                "(10 per minute per client IP and email).",
                [
                    Query(
                        "sum(rate(ratelimit_decisions_total"
                        f'{{policy="login",decision="limited"}}{RATE}))',
                        "refused",
                    )
                ],
                unit="reqps",
            ),
            time_series(
                "401 and 403 responses by route",
                "Requests refused for a missing, invalid or expired token (401) or a missing "
                "role (403).",
                [
                    Query(
                        "sum by (route, status) "
                        f'(rate(http_requests_total{{status=~"401|403"}}{RATE}))',
                        "{{route}} {{status}}",
                    )
                ],
                unit="reqps",
            ),
        ],
    )


def _refresh() -> Row:
    return Row(
        "Refresh tokens",
        [
            time_series(
                "Refreshes by result",
                "`rotated`: a new pair was issued; `invalid`: unknown, expired or revoked "
                "token; `reuse_detected`: a spent token was presented again.",
                [Query(f"sum by (result) (rate(auth_refresh_total{RATE}))", "{{result}}")],
                unit="reqps",
            ),
            time_series(
                "Reuse detections per hour",
                "Sessions revoked because a spent refresh token came back.",
                [
                    Query(
                        'sum(increase(auth_refresh_total{result="reuse_detected"}[1h]))',
                        "reuse detected",
                    )
                ],
                unit="short",
            ),
        ],
    )


def build() -> Dashboard:
    return build_dashboard(
        UID,
        "Slipway / Authentication",
        "Logins by result, refresh-token rotation and reuse detections.",
        [_overview(), _logins(), _refresh()],
    )
