"""`ops_flow_runs`: one row per finished ops flow run, the source of the ops_flow_* metrics.

Flows run in short-lived processes (Prefect workers) that no scraper can reach, so they write
their outcome here and the API's /metrics derives the series from this table at scrape time
(docs/adr/0002-flow-metrics.md). Rows are never deleted: the run counters are counts of rows,
and a shrinking count would look like a counter reset to Prometheus.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# The naming convention lives on the shared metadata in api.metadata; importing it first means the
# constraint names below follow it even when this module is the first one imported.
from api import metadata as _shared_metadata  # noqa: F401

FlowResult = Literal["success", "failure"]
FLOW_RESULTS: tuple[FlowResult, ...] = ("success", "failure")

# The flows of docs/operations.md. The `flow` label only takes these values, so the number of
# series stays fixed whatever a caller passes.
KNOWN_FLOWS: tuple[str, ...] = ("backup", "reconcile-payments", "dependency-scan", "tech-debt")

FLOW_NAME_MAX_LENGTH = 64
RESULT_MAX_LENGTH = 16


def utc_now() -> datetime:
    return datetime.now(UTC)


class OpsFlowRun(SQLModel, table=True):
    """A finished flow run: which flow, whether it did its job, when, and what it measured.

    `measurements` maps a measurement name to counts by category, e.g.
    `{"mismatches": {"missing_locally": 2}}` or `{"vulnerabilities": {"critical": 1}}`;
    api.observability.flow_metrics says which ones become metrics.
    """

    __tablename__ = "ops_flow_runs"
    __table_args__ = (sa.CheckConstraint("result IN ('success', 'failure')", name="result"),)

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4, sa_column=sa.Column(sa.Uuid(), primary_key=True)
    )
    flow: str = Field(
        sa_column=sa.Column(sa.String(FLOW_NAME_MAX_LENGTH), nullable=False, index=True)
    )
    result: str = Field(sa_column=sa.Column(sa.String(RESULT_MAX_LENGTH), nullable=False))
    started_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    finished_at: datetime = Field(
        default_factory=utc_now, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    measurements: dict[str, dict[str, float]] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON(), nullable=False)
    )
