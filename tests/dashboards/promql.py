"""Checking PromQL against the metric catalogue, with a real PromQL parser (promql-parser).

Every selector must name a series the API exports (or a series a recording rule defines),
match only labels that series has, and every `by (...)` grouping must use labels that the
aggregated series carry, so a typo in a dashboard or rule fails here instead of drawing an
empty panel or never firing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import promql_parser

# Grafana replaces these before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1d"}
# Added by the scraper to every series; aggregating by them is always possible.
SCRAPE_LABELS = frozenset({"instance", "job"})
LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def parse(expr: str) -> promql_parser.Expr:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def _selectors(node: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(child: promql_parser.Expr) -> bool:
        if isinstance(child, promql_parser.VectorSelector):
            found.append(child)
        return True

    promql_parser.walk(node, visit)
    return found


def selected_names(expr: str) -> set[str]:
    return {selector.name for selector in _selectors(parse(expr)) if selector.name}


def problems(expr: str, catalogue: Mapping[str, frozenset[str]]) -> list[str]:
    """What in `expr` does not match `catalogue` (series name -> label names); [] if all does."""
    found: list[str] = []
    tree = parse(expr)

    def labels_under(node: promql_parser.Expr) -> set[str]:
        labels = set(SCRAPE_LABELS)
        for selector in _selectors(node):
            labels |= catalogue.get(selector.name or "", frozenset())
        return labels

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name is None or node.name not in catalogue:
                found.append(f"unknown series {node.name!r}")
                return True
            for matcher in node.matchers.matchers:
                if matcher.name not in catalogue[node.name] | SCRAPE_LABELS:
                    found.append(f"{node.name} has no label {matcher.name!r}")
        grouping = node.modifier if isinstance(node, promql_parser.AggregateExpr) else None
        if grouping is not None and grouping.type == promql_parser.AggModifierType.By:
            available = labels_under(node.expr)  # type: ignore[attr-defined]
            for label in grouping.labels:
                if label not in available:
                    found.append(f"grouping by {label!r}, which the series do not carry")
        return True

    promql_parser.walk(tree, visit)
    return found


def output_labels(expr: str, catalogue: Mapping[str, frozenset[str]]) -> set[str]:
    """Labels a legend may name: those of the selected series, at most."""
    labels = set(SCRAPE_LABELS)
    for selector in _selectors(parse(expr)):
        labels |= catalogue.get(selector.name or "", frozenset())
    return labels


def legend_labels(legend: str) -> set[str]:
    return set(LEGEND_LABEL.findall(legend))
