"""What every Prefect flow does at the end: artifacts in the UI, the metrics row, the verdict.

Prefect is imported only when a flow is actually running under it, so the CLI (and its tests)
never pay Prefect's import and temporary-server cost.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from flows.recording import record_outcome
from flows.reports import FlowOutcome, failure_outcome


class FlowRunFailed(RuntimeError):
    """Raised at the end of a Prefect run whose outcome is a failure (or non-zero exit), so the
    run shows as Failed in the UI and Prefect's retries apply."""


def running_under_prefect() -> bool:
    if "prefect" not in sys.modules:
        return False
    from prefect.context import FlowRunContext

    return FlowRunContext.get() is not None


def publish_artifacts(outcome: FlowOutcome) -> bool:
    """Markdown and table artifacts for the run, when inside a Prefect flow run."""
    if not running_under_prefect():
        return False
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = f"{outcome.flow}-report"
    create_markdown_artifact(
        outcome.markdown or f"# {outcome.flow}\n\n{outcome.summary}\n",
        key=key,
        description=f"{outcome.summary} (JSON: {outcome.report_path})",
    )
    if outcome.table:
        create_table_artifact(
            outcome.table, key=f"{outcome.flow}-table", description=outcome.summary
        )
    return True


def finish_prefect_run(outcome: FlowOutcome, started_at: datetime) -> str:
    """Publish, record, print the report path last; raise when the run should show as failed."""
    publish_artifacts(outcome)
    record_outcome(outcome, started_at)
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
        outcome = failure_outcome(flow, exc, reports_dir)
        publish_artifacts(outcome)
        record_outcome(outcome, started_at)
        raise
