"""The PromQL checker used on dashboards and rules catches what it is there to catch."""

from __future__ import annotations

from tests.dashboards.promql import legend_labels, problems, selected_names

CATALOGUE = {
    "http_requests_total": frozenset({"method", "route", "status"}),
    "http_request_duration_seconds_bucket": frozenset({"method", "route", "le"}),
}


def test_a_valid_query_has_no_problems() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (route, le) "
        '(rate(http_request_duration_seconds_bucket{route=~"$route"}[$__rate_interval])))'
        ' / on() group_left sum(rate(http_requests_total{status=~"5.."}[5m]))'
    )
    assert problems(expr, CATALOGUE) == []
    assert selected_names(expr) == {"http_request_duration_seconds_bucket", "http_requests_total"}


def test_unknown_series_labels_and_groupings_are_reported() -> None:
    assert problems("sum(rate(http_request_total[5m]))", CATALOGUE) == [
        "unknown series 'http_request_total'"
    ]
    assert problems('http_requests_total{path="/v1/x"}', CATALOGUE) == [
        "http_requests_total has no label 'path'"
    ]
    assert problems("sum by (le) (rate(http_requests_total[5m]))", CATALOGUE) == [
        "grouping by 'le', which the series do not carry"
    ]


def test_scrape_labels_are_always_available() -> None:
    assert problems('sum by (instance) (http_requests_total{job="api"})', CATALOGUE) == []


def test_legend_labels_are_read_from_templates() -> None:
    assert legend_labels("{{route}} {{ status }} p99") == {"route", "status"}
