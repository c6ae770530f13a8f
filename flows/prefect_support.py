"""What every flow run does at the end: keep the report, artifacts in the UI, the metrics row,
the verdict.

Prefect is imported only when a flow is actually running under it, so the CLI (and its tests)
never pay Prefect's import and temporary-server cost.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from flows.recording import record_outcome
from flows.report_store import browser_link, keep_report
from flows.reports import FlowOutcome, failure_outcome
from flows.s3 import StorageError


class FlowRunFailed(RuntimeError):
    """Raised at the end of a Prefect run whose outcome is a failure (or non-zero exit), so the
    run shows as Failed in the UI and Prefect's retries apply."""


def running_under_prefect() -> bool:
    if "prefect" not in sys.modules:
        return False
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def publish_artifacts(outcome: FlowOutcome) -> bool:
    """Markdown, table and report-link artifacts for the run, when inside a Prefect flow run."""
    if not running_under_prefect():
        return False
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    key = f"{outcome.flow}-report"
    create_markdown_artifact(
        outcome.markdown or f"# {outcome.flow}\n\n{outcome.summary}\n",
        key=key,
        description=f"{outcome.summary} (JSON: {outcome.report_url or outcome.report_path})",
    )
    if outcome.table:
        create_table_artifact(
            outcome.table, key=f"{outcome.flow}-table", description=outcome.summary
        )
    if outcome.report_url:
        create_link_artifact(
            browser_link(outcome.report_url),
            link_text=outcome.report_url,
            key=f"{outcome.flow}-report-link",
            description="this run's JSON report, kept in S3",
        )
    return True


# What a flow does with its report once kept (tech-debt: its GitHub tracking issue).
AfterKept = Callable[[FlowOutcome], FlowOutcome]


def complete_run(
    outcome: FlowOutcome, started_at: datetime, after_kept: AfterKept | None = None
) -> FlowOutcome:
    """Keep the report (trend, S3), run `after_kept`, publish the artifacts, record the run;
    returns the outcome as kept. A report that cannot be kept turns the run into a failure: its
    history is lost."""
    try:
        outcome = keep_report(outcome)
    except StorageError as exc:
        kept_locally = outcome.report_path
        outcome = failure_outcome(outcome.flow, exc, kept_locally.parent.parent.parent)
        print(f"error: {outcome.summary} (local report: {kept_locally})", file=sys.stderr)
    else:
        if after_kept is not None:
            outcome = after_kept(outcome)
    publish_artifacts(outcome)
    record_outcome(outcome, started_at)
    return outcome


def finish_prefect_run(
    outcome: FlowOutcome, started_at: datetime, after_kept: AfterKept | None = None
) -> str:
    """Complete the run, print the report path last; raise when the run should show as failed."""
    outcome = complete_run(outcome, started_at, after_kept)
    if outcome.report_url:
        print(f"report: {outcome.report_url}")
    print(outcome.report_path)
    if not outcome.succeeded or outcome.exit_code != 0:
        raise FlowRunFailed(f"{outcome.flow}: {outcome.summary} (report: {outcome.report_path})")
    return str(outcome.report_path)


@contextmanager
def failures_recorded(flow: str, reports_dir: Path) -> Iterator[datetime]:
    """Yields the start time; an error escaping the block is reported and recorded, then
    re-raised for Prefect to retry or fail the run."""
    started_at = datetime.now(UTC)
    try:
        yield started_at
    except FlowRunFailed:
        raise  # already reported and recorded by finish_prefect_run
    except Exception as exc:
        complete_run(failure_outcome(flow, exc, reports_dir), started_at)
        raise
