"""Every series name /metrics can export, with its label names.

This is what dashboards and alert rules may select; tests check each PromQL selector against
it. A labelled metric has no series until it is first used, so the catalogue is read from the
metric definitions rather than from a scrape.
"""

from __future__ import annotations

from api.observability.flow_metrics import FLOW_FAMILIES
from api.observability.metrics import API_METRICS, DERIVED_FAMILIES

# The series each metric type exposes in the text format, and the labels they add.
_SERIES_BY_TYPE: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "counter": (("_total", ()), ("_created", ())),
    "gauge": (("", ()),),
    "histogram": (("_bucket", ("le",)), ("_sum", ()), ("_count", ()), ("_created", ())),
}


def _series(name: str, metric_type: str, labels: tuple[str, ...]) -> dict[str, frozenset[str]]:
    return {
        name + suffix: frozenset((*labels, *extra))
        for suffix, extra in _SERIES_BY_TYPE[metric_type]
    }


def exported_series() -> dict[str, frozenset[str]]:
    catalogue: dict[str, frozenset[str]] = {}
    for metric in API_METRICS:
        # prometheus_client keeps the definition in private attributes; the counter's `_name`
        # has its `_total` suffix removed, like the family name in the text format.
        catalogue.update(_series(metric._name, metric._type, tuple(metric._labelnames)))
    for name, (metric_type, labels) in {**FLOW_FAMILIES, **DERIVED_FAMILIES}.items():
        # Derived from the database, without creation timestamps.
        series = _series(name, metric_type, labels)
        catalogue.update({key: labels for key, labels in series.items() if "_created" not in key})
    return catalogue
