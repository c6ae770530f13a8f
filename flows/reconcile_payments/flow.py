"""reconcile-payments under Prefect: the reconciliation and its report as tasks.

DATABASE_URL and STRIPE_SECRET_KEY come from the worker's environment (api.settings), never
from parameters, which Prefect shows in plain text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import flow, task

from api.settings import Settings
from flows.notifications import notify_failure
from flows.policies import run_policy
from flows.prefect_support import failures_recorded, finish_prefect_run
from flows.reconcile_payments.pipeline import (
    FLOW_NAME,
    Reconciliation,
    reconcile_database,
    write_reconciliation_report,
)
from flows.reports import DEFAULT_REPORTS_DIR


@task(name="reconcile-with-stripe")
async def reconcile_task(database_url: str, since: datetime, dry_run: bool) -> Reconciliation:
    return await reconcile_database(database_url, since, dry_run)


report_task = task(name="write-report")(write_reconciliation_report)


@flow(
    name=FLOW_NAME,
    log_prints=True,
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
    **run_policy(FLOW_NAME),
)
async def reconcile_payments_flow(
    lookback_hours: int = 72,
    since: datetime | None = None,
    dry_run: bool = False,
    reports_dir: str = str(DEFAULT_REPORTS_DIR),
) -> str:
    with failures_recorded(FLOW_NAME, Path(reports_dir)) as started_at:
        start = since or datetime.now(UTC) - timedelta(hours=lookback_hours)
        result = await reconcile_task(Settings().database_url, start, dry_run)
        outcome = report_task(result, Path(reports_dir))
        return finish_prefect_run(outcome, started_at)
