"""The few panel shapes our dashboards use, built with grafana-foundation-sdk.

Every query goes to the `$datasource` variable (a Prometheus data source: AMP in the
deployed workspace), so the same JSON works whatever the data source is called. Rates use
`$__rate_interval`, which Grafana sizes to the scrape interval and the zoom level.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
)

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
FULL_WIDTH = 24
# Grafana picks a window of at least four scrape intervals for every rate().
RATE = "[$__rate_interval]"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Step:
    """A threshold: from `value` upwards (None: from minus infinity) the panel is `color`."""

    value: float | None
    color: str


def summed_rate(metric: str, *matchers: str, by: str = "") -> str:
    """`sum [by (...)] (rate(metric{matchers}[$__rate_interval]))`, skipping empty matchers."""
    selector = ",".join(matcher for matcher in matchers if matcher)
    inner = f"rate({metric}{{{selector}}}{RATE})"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def _targets(queries: list[Query]) -> list[prometheus.Dataquery]:
    targets = []
    for index, query in enumerate(queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + index))
        if query.legend:
            target = target.legend_format(query.legend)
        targets.append(target)
    return targets


def _thresholds(steps: list[Step]) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=step.value, color=step.color) for step in steps])
    )


def time_series(
    title: str,
    description: str,
    queries: list[Query],
    *,
    unit: str,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))  # type: ignore[arg-type]
        .unit(unit)
        .span(width)
        .height(height)
        .fill_opacity(10)
        .line_width(1)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel = panel.stacking(
            common_builders.StackingConfig().mode(common.StackingMode.NORMAL)
        ).fill_opacity(40)
    return panel


def stat_panel(
    title: str,
    description: str,
    query: Query,
    *,
    unit: str,
    steps: list[Step] | None = None,
    width: int = 6,
    height: int = 4,
    no_value: str = "no data",
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets([query]))  # type: ignore[arg-type]
        .unit(unit)
        .span(width)
        .height(height)
        .no_value(no_value)
        .thresholds(_thresholds(steps or [Step(None, "green")]))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )


def datasource_variable() -> dashboard_builders.DatasourceVariable:
    return (
        dashboard_builders.DatasourceVariable("datasource").label("Data source").type("prometheus")
    )


def label_variable(name: str, label: str, metric: str) -> dashboard_builders.QueryVariable:
    """A multi-select filter over the values of one label (all selected by default)."""
    return (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f"label_values({metric}, {name})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


@dataclass(frozen=True)
class Row:
    title: str
    panels: list[timeseries.Panel | stat.Panel]


def build_dashboard(
    uid: str,
    title: str,
    description: str,
    rows: list[Row],
    *,
    variables: list[dashboard_builders.QueryVariable] | None = None,
) -> dashboard_builders.Dashboard:
    """A dashboard with fixed panel ids, so the generated JSON only changes when we change it."""
    board = (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["slipway"])
        .editable()
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("utc")
        .with_variable(datasource_variable())
    )
    for variable in variables or []:
        board = board.with_variable(variable)
    panel_id = 0
    for row in rows:
        panel_id += 1
        board = board.with_row(dashboard_builders.Row(row.title).id(panel_id))
        for panel in row.panels:
            panel_id += 1
            board = board.with_panel(panel.id(panel_id))
    return board
