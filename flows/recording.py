"""Recording each run's outcome in `ops_flow_runs`, the source of the API's ops_flow_* metrics.

Flows run in short-lived processes no scraper reaches, so they write to the API's database
(DATABASE_URL, read through api.settings like everything else) and /metrics derives
ops_flow_last_success_timestamp_seconds and ops_flow_runs_total from the rows.

Recording is best effort: a run whose backup succeeded stays a success even when the metrics
row cannot be written; the missing row shows up as a stale last-success timestamp, which is
what the alerts watch.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from datetime import datetime

from api.observability.flow_runs import record_flow_run
from api.settings import Settings
from flows.reports import FlowOutcome


def _run_coroutine_blocking(database_url: str, outcome: FlowOutcome, started_at: datetime) -> None:
    coroutine = record_flow_run(
        database_url,
        outcome.flow,
        "success" if outcome.succeeded else "failure",
        datetime.now(started_at.tzinfo),
        started_at=started_at,
        measurements=outcome.measurements,
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    # Called from inside an event loop (an async Prefect context): run it on its own thread.
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="record-flow-run")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def record_outcome(
    outcome: FlowOutcome, started_at: datetime, database_url: str | None = None
) -> bool:
    """Store the outcome; returns False (with a warning on stderr) when that was not possible."""
    try:
        url = database_url or Settings().database_url
        _run_coroutine_blocking(url, outcome, started_at)
    except Exception as exc:
        # The type only: driver messages can quote connection parameters.
        print(
            f"warning: could not record the {outcome.flow} run in ops_flow_runs (DATABASE_URL) "
            f"({type(exc).__name__})",
            file=sys.stderr,
        )
        return False
    return True
