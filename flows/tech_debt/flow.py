"""tech-debt under Prefect: analysis and report as tasks, the hotspot table as an artifact, then
the GitHub tracking issue."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from flows.notifications import notify_failure
from flows.policies import run_policy
from flows.prefect_support import failures_recorded, finish_prefect_run
from flows.reports import DEFAULT_REPORTS_DIR
from flows.tech_debt.pipeline import FLOW_NAME, analyse_repository, write_tech_debt_report
from flows.tech_debt.tracking_issue import publish_tracking_issue

analyse_task = task(name="analyse-repository")(analyse_repository)
report_task = task(name="write-report")(write_tech_debt_report)


@flow(
    name=FLOW_NAME,
    log_prints=True,
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
    **run_policy(FLOW_NAME),
)
def tech_debt_flow(
    repo: str = ".",
    since: int = 90,
    include_tests: bool = False,
    reports_dir: str = str(DEFAULT_REPORTS_DIR),
) -> str:
    with failures_recorded(FLOW_NAME, Path(reports_dir)) as started_at:
        report = analyse_task(Path(repo), since, include_tests)
        outcome = report_task(report, Path(reports_dir))
        return finish_prefect_run(outcome, started_at, publish_tracking_issue)
