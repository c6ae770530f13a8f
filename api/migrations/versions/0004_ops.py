"""Ops: flow run outcomes exported as metrics.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ops_flow_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("measurements", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "result IN ('success', 'failure')", name=op.f("ck_ops_flow_runs_result")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ops_flow_runs")),
    )
    op.create_index(op.f("ix_ops_flow_runs_flow"), "ops_flow_runs", ["flow"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ops_flow_runs_flow"), table_name="ops_flow_runs")
    op.drop_table("ops_flow_runs")
