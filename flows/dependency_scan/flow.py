"""dependency-scan under Prefect: the pipeline's steps as tasks, artifacts in the UI."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from flows.dependency_scan.pipeline import (
    DEFAULT_ADVISORY_DB,
    FLOW_NAME,
    prepare_advisory_database,
    read_dependencies,
    scan_dependencies,
    write_scan_reports,
)
from flows.notifications import notify_failure
from flows.policies import run_policy
from flows.prefect_support import failures_recorded, finish_prefect_run
from flows.reports import DEFAULT_REPORTS_DIR

read_dependencies_task = task(name="read-dependencies")(read_dependencies)
# Retried by the flow as a whole (the download is one step): no task-level retries here.
prepare_database_task = task(name="advisory-database")(prepare_advisory_database)
scan_task = task(name="match-advisories")(scan_dependencies)
write_reports_task = task(name="write-reports")(write_scan_reports)


@flow(
    name=FLOW_NAME,
    log_prints=True,
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
    **run_policy(FLOW_NAME),
)
def dependency_scan_flow(
    lock: str | None = "uv.lock",
    requirements: str | None = None,
    advisory_db: str = str(DEFAULT_ADVISORY_DB),
    advisory_db_url: str | None = None,
    ignore: str | None = None,
    reports_dir: str = str(DEFAULT_REPORTS_DIR),
) -> str:
    with failures_recorded(FLOW_NAME, Path(reports_dir)) as started_at:
        dependencies = read_dependencies_task(
            Path(lock) if lock else None, Path(requirements) if requirements else None
        )
        database = prepare_database_task(Path(advisory_db), advisory_db_url)
        result = scan_task(dependencies, Path(advisory_db), Path(ignore) if ignore else None)
        inputs = {
            "lock": lock,
            "requirements": requirements,
            "advisory_db": advisory_db,
            "ignore": ignore,
        }
        outcome = write_reports_task(result, inputs, Path(reports_dir), database)
        return finish_prefect_run(outcome, started_at)
