"""backup under Prefect: dump-and-upload and verify as tasks, artifacts in the UI.

The database URL carries a password, and Prefect stores flow parameters in plain text: the
scheduled deployment passes none, and the flow reads DATABASE_URL from the worker's
environment through api.settings instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from api.settings import Settings
from flows.backup.pipeline import (
    FLOW_NAME,
    BackupOptions,
    dump_to_s3,
    verify_backup,
    write_backup_report,
)
from flows.backup.postgres import BackupError
from flows.notifications import notify_failure
from flows.policies import run_policy
from flows.prefect_support import failures_recorded, finish_prefect_run
from flows.reports import DEFAULT_REPORTS_DIR

dump_task = task(name="pg-dump-to-s3")(dump_to_s3)
verify_task = task(name="restore-and-compare")(verify_backup)
report_task = task(name="write-report")(write_backup_report)


@flow(
    name=FLOW_NAME,
    log_prints=True,
    on_failure=[notify_failure],
    on_crashed=[notify_failure],
    **run_policy(FLOW_NAME),
)
def backup_flow(
    bucket: str | None = None,
    prefix: str = "backups/",
    kms_key_id: str | None = None,
    s3_endpoint_url: str | None = None,
    verify: bool = True,
    database_url: str | None = None,
    reports_dir: str = str(DEFAULT_REPORTS_DIR),
) -> str:
    with failures_recorded(FLOW_NAME, Path(reports_dir)) as started_at:
        if not bucket:
            raise BackupError("no bucket configured (the deployment reads BACKUP_BUCKET)")
        options = BackupOptions(
            database_url=database_url or Settings().database_url,
            bucket=bucket,
            prefix=prefix,
            kms_key_id=kms_key_id or None,
            s3_endpoint_url=s3_endpoint_url or None,
            verify=verify,
        )
        manifest: dict[str, Any] = dump_task(options)
        verification = verify_task(options, manifest) if verify else None
        outcome = report_task(manifest, verification, Path(reports_dir))
        return finish_prefect_run(outcome, started_at)
