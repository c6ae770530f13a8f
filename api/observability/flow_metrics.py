"""The ops_* series, derived from the `ops_flow_runs` table each time /metrics is scraped.

Every API instance exports the same values (they come from the shared database), so
dashboards and rules aggregate them with `max`, never `sum`. When the database cannot be read
the families are exported without samples: an alert on a missing backup series fires rather
than a stale value being shown as current.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.observability.models import FLOW_RESULTS, KNOWN_FLOWS, OpsFlowRun


@dataclass(frozen=True)
class FlowGauge:
    """A gauge fed by one measurement of the latest successful run of one flow."""

    name: str
    flow: str
    measurement: str
    label: str
    documentation: str
    # Exported as 0 when the latest successful run recorded nothing for them, so that "the
    # scan found no critical vulnerability" reads 0 rather than as a missing series.
    categories: tuple[str, ...] = ()


LAST_SUCCESS = "ops_flow_last_success_timestamp_seconds"
RUNS = "ops_flow_runs"  # exported as ops_flow_runs_total (a counter)

# Beyond docs/reference.md#metrics: what the ops dashboard and alerts need from the flows'
# reports. The flows record these measurements (api.observability.flow_runs).
FLOW_GAUGES: tuple[FlowGauge, ...] = (
    FlowGauge(
        name="ops_reconciliation_mismatches",
        flow="reconcile-payments",
        measurement="mismatches",
        label="kind",
        documentation="Stripe/database mismatches found by the latest successful "
        "reconciliation, by kind.",
    ),
    FlowGauge(
        name="ops_vulnerabilities_open",
        flow="dependency-scan",
        measurement="vulnerabilities",
        label="severity",
        documentation="Unignored vulnerabilities found by the latest successful dependency "
        "scan, by severity.",
        categories=("critical", "high", "medium", "low"),
    ),
)

# name -> (Prometheus type, label names): what /metrics exports, for the catalogue.
FLOW_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    LAST_SUCCESS: ("gauge", ("flow",)),
    RUNS: ("counter", ("flow", "result")),
    **{gauge.name: ("gauge", (gauge.label,)) for gauge in FLOW_GAUGES},
}


def _as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class FlowRunSnapshot:
    """What the table says at one moment, in the shape the collector exports."""

    runs: Mapping[tuple[str, str], int] = field(default_factory=dict)
    last_success: Mapping[str, float] = field(default_factory=dict)
    # flow -> the measurements of its latest successful run
    latest_measurements: Mapping[str, Mapping[str, Mapping[str, float]]] = field(
        default_factory=dict
    )


async def load_snapshot(session: AsyncSession) -> FlowRunSnapshot:
    counted = await session.execute(
        select(OpsFlowRun.flow, OpsFlowRun.result, func.count()).group_by(  # type: ignore[call-overload]
            OpsFlowRun.flow, OpsFlowRun.result
        )
    )
    runs = {(flow, result): int(count) for flow, result, count in counted.all()}
    succeeded = await session.execute(
        select(OpsFlowRun.flow, func.max(OpsFlowRun.finished_at))  # type: ignore[call-overload]
        .where(OpsFlowRun.result == "success")
        .group_by(OpsFlowRun.flow)
    )
    last_success = {flow: _as_utc(moment).timestamp() for flow, moment in succeeded.all()}
    latest_measurements: dict[str, Mapping[str, Mapping[str, float]]] = {}
    for flow in {gauge.flow for gauge in FLOW_GAUGES}:
        latest = await session.scalar(
            select(OpsFlowRun.measurements)  # type: ignore[call-overload]
            .where(OpsFlowRun.flow == flow, OpsFlowRun.result == "success")
            .order_by(OpsFlowRun.finished_at.desc())  # type: ignore[attr-defined]
            .limit(1)
        )
        if latest is not None:
            latest_measurements[flow] = latest
    return FlowRunSnapshot(runs, last_success, latest_measurements)


class FlowRunCollector(Collector):
    """Exports one snapshot; `None` means the table could not be read (families, no samples)."""

    def __init__(self, snapshot: FlowRunSnapshot | None) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        last_success = GaugeMetricFamily(
            LAST_SUCCESS,
            "Unix time of the last successful run of each ops flow.",
            labels=["flow"],
        )
        runs = CounterMetricFamily(RUNS, "Ops flow runs, by result.", labels=["flow", "result"])
        gauges = [
            (gauge, GaugeMetricFamily(gauge.name, gauge.documentation, labels=[gauge.label]))
            for gauge in FLOW_GAUGES
        ]
        if snapshot is not None:
            for flow, timestamp in sorted(snapshot.last_success.items()):
                last_success.add_metric([flow], timestamp)
            # Zeros for every known flow and result: a first failure must be an increase from
            # 0, not a new series that increase() cannot see.
            flows = sorted({*KNOWN_FLOWS, *(flow for flow, _ in snapshot.runs)})
            for flow in flows:
                for result in FLOW_RESULTS:
                    runs.add_metric([flow, result], snapshot.runs.get((flow, result), 0))
            for gauge, family in gauges:
                if gauge.flow not in snapshot.latest_measurements:
                    continue  # no successful run yet: nothing is known
                measured = snapshot.latest_measurements[gauge.flow].get(gauge.measurement, {})
                values = dict.fromkeys(gauge.categories, 0.0) | dict(measured)
                for category, value in sorted(values.items()):
                    family.add_metric([category], value)
        yield last_success
        yield runs
        for _, family in gauges:
            yield family
