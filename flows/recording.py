"""Recording each run's outcome in `ops_flow_runs`, the source of the API's ops_flow_* metrics.

Flows run in short-lived processes no scraper reaches, so they write to the API's database
(DATABASE_URL, read through api.settings like everything else) and /metrics derives
ops_flow_last_success_timestamp_seconds and ops_flow_runs_total from the rows.

Recording is best effort: a run whose backup succeeded stays a success even when the metrics
row cannot be written; the missing row shows up as a stale last-success timestamp, which is
what the alerts watch.
"""

from __future__ import annotations

import sys
from datetime import datetime

from api.observability.flow_runs import record_flow_run
from api.settings import Settings
from flows.async_support import run_blocking
from flows.reports import FlowOutcome


def record_outcome(
    outcome: FlowOutcome, started_at: datetime, database_url: str | None = None
) -> bool:
    """Store the outcome; returns False (with a warning on stderr) when that was not possible."""
    try:
        url = database_url or Settings().database_url
        run_blocking(
            record_flow_run(
                url,
                outcome.flow,
                "success" if outcome.succeeded else "failure",
                datetime.now(started_at.tzinfo),
                started_at=started_at,
                measurements=outcome.measurements,
            )
        )
    except Exception as exc:
        # The type only: driver messages can quote connection parameters.
        print(
            f"warning: could not record the {outcome.flow} run in ops_flow_runs (DATABASE_URL) "
            f"({type(exc).__name__})",
            file=sys.stderr,
        )
        return False
    return True
