"""A flow run that fails or crashes tells the team: Prefect calls `notify_failure` (every flow's
on_failure and on_crashed hook), which publishes a notice to FLOWS_ALERTS_TOPIC_ARN, the
stack's pages topic. The notice is an AWS Chatbot custom notification (flows/chatbot.py), the
one shape Chatbot relays to Slack, like the alert manager's pages.

Besides this, every outcome lands in ops_flow_runs, which the alerts watch.
"""

from __future__ import annotations

import sys
from typing import Any

from flows.chatbot import custom_notification
from flows.settings import flows_settings

MAX_ERROR_TEXT = 1500
RUNBOOK = "docs/operations.md (Failures reach people) and the run's logs in the Prefect UI"


def failure_notice(
    *,
    flow: str,
    run_name: str,
    run_id: str,
    state: str,
    error: str,
    stack: str,
    run_url: str | None,
) -> str:
    """The SNS message for one failed or crashed run."""
    lines = [f"Flow run *{run_name}* of *{flow}* ended {state}.", "", f"```{error.strip()}```"]
    if run_url:
        lines += ["", f"Run: {run_url}"]
    return custom_notification(
        title=f":x: Flow run {state.lower()}: {flow} ({stack})",
        description="\n".join(lines),
        stack=stack,
        severity="page",
        thread_id=f"flow/{flow}",
        next_steps=[f"Runbook: {RUNBOOK}", f"Flow run id: {run_id}"],
        event_type="slipway-flow-run-failure",
    )


def _run_url(run_id: str) -> str | None:
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    return f"{str(ui).rstrip('/')}/runs/flow-run/{run_id}" if ui else None


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect's hook signature. Never raises: a notice that cannot be sent is a warning in the
    run's log, and the run's own failure stands."""
    settings = flows_settings()
    if not settings.alerts_topic_arn:
        return
    try:
        from flows.s3 import boto_client

        message = failure_notice(
            flow=str(flow.name),
            run_name=str(flow_run.name),
            run_id=str(flow_run.id),
            state=str(state.name),
            error=str(state.message or state.type)[:MAX_ERROR_TEXT],
            stack=settings.stack,
            run_url=_run_url(str(flow_run.id)),
        )
        boto_client("sns").publish(TopicArn=settings.alerts_topic_arn, Message=message)
    except Exception as exc:
        print(
            f"warning: the failure notice for {flow.name} was not sent ({type(exc).__name__})",
            file=sys.stderr,
        )
