"""The generated Grafana dashboards: committed JSON is fresh, every query selects series the API
exports with labels they carry, and each dashboard shows what it promises."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.observability.catalogue import exported_series
from dashboards.generate import DASHBOARDS, GENERATED, rendered, stale_files, write
from tests.dashboards.promql import legend_labels, output_labels, problems, selected_names

BOARDS: dict[str, dict[str, Any]] = {
    name.removesuffix(".json"): json.loads(text) for name, text in rendered().items()
}
LABEL_VALUES = re.compile(r"label_values\((\w+),\s*(\w+)\)")


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _queries(board: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in _panels(board):
        for target in panel.get("targets", []):
            yield panel["title"], target


def test_committed_json_matches_the_generator() -> None:
    assert stale_files() == [], "dashboards/generated is out of date: run `make dashboards`"


def test_stale_missing_and_extra_files_are_detected(tmp_path: Path) -> None:
    write(tmp_path)
    assert stale_files(tmp_path) == []
    (tmp_path / "auth.json").write_text("{}")
    (tmp_path / "ops.json").unlink()
    (tmp_path / "old-board.json").write_text("{}")
    assert stale_files(tmp_path) == ["auth.json", "old-board.json", "ops.json"]


def test_generated_directory_holds_exactly_the_dashboards() -> None:
    assert sorted(path.stem for path in GENERATED.glob("*.json")) == sorted(DASHBOARDS)
    assert set(DASHBOARDS) == {"api-overview", "rate-limiting", "auth", "payments", "ops"}


def test_uids_are_unique_and_stable() -> None:
    uids = [board["uid"] for board in BOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert all(uid == f"slipway-{slug}" for slug, uid in zip(BOARDS, uids, strict=True))


@pytest.mark.parametrize("slug", sorted(BOARDS))
def test_every_query_selects_exported_series_and_labels(slug: str) -> None:
    catalogue = exported_series()
    found = {
        f"{title}: {problem}"
        for title, target in _queries(BOARDS[slug])
        for problem in problems(target["expr"], catalogue)
    }
    assert found == set()


@pytest.mark.parametrize("slug", sorted(BOARDS))
def test_legends_name_only_labels_the_query_returns(slug: str) -> None:
    catalogue = exported_series()
    for title, target in _queries(BOARDS[slug]):
        missing = legend_labels(target.get("legendFormat", "")) - output_labels(
            target["expr"], catalogue
        )
        assert missing == set(), f"{title}: legend names {missing}"


@pytest.mark.parametrize("slug", sorted(BOARDS))
def test_variables_list_values_of_existing_labels(slug: str) -> None:
    catalogue = exported_series()
    for variable in BOARDS[slug]["templating"]["list"]:
        if variable["type"] != "query":
            continue
        metric, label = LABEL_VALUES.fullmatch(variable["query"]).groups()  # type: ignore[union-attr]
        assert label in catalogue[metric]


@pytest.mark.parametrize("slug", sorted(BOARDS))
def test_panels_are_described_placed_and_use_the_datasource_variable(slug: str) -> None:
    panels = list(_panels(BOARDS[slug]))
    ids = [panel["id"] for panel in panels]
    assert len(set(ids)) == len(ids)
    for panel in panels:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["title"]
        assert panel["description"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert [target["refId"] for target in panel["targets"]] == [
            chr(ord("A") + index) for index in range(len(panel["targets"]))
        ]


def _metrics_used(slug: str) -> set[str]:
    return {name for _, target in _queries(BOARDS[slug]) for name in selected_names(target["expr"])}


@pytest.mark.parametrize(
    ("slug", "metrics"),
    [
        (
            "api-overview",
            {
                "http_requests_total",
                "http_request_duration_seconds_bucket",
                "http_requests_in_progress",
            },
        ),
        ("rate-limiting", {"ratelimit_decisions_total", "ratelimit_backend_errors_total"}),
        ("auth", {"auth_logins_total", "auth_refresh_total"}),
        (
            "payments",
            {
                "payments_created_total",
                "payments_status_transitions_total",
                "stripe_webhook_events_total",
                "stripe_webhook_processing_seconds_bucket",
            },
        ),
        (
            "ops",
            {
                "ops_flow_last_success_timestamp_seconds",
                "ops_flow_runs_total",
                "ops_reconciliation_mismatches",
                "ops_vulnerabilities_open",
            },
        ),
    ],
)
def test_each_dashboard_shows_its_metrics(slug: str, metrics: set[str]) -> None:
    assert metrics <= _metrics_used(slug)


def test_api_overview_has_latency_quantiles_per_route() -> None:
    exprs = [target["expr"] for _, target in _queries(BOARDS["api-overview"])]
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(
            expr.startswith(f"histogram_quantile({quantile}, sum by (route, le)") for expr in exprs
        ), quantile
