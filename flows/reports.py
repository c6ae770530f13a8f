"""Where flow reports go, and the outcome every flow run hands back.

Reports land in `<reports dir>/<flow>/<UTC timestamp>/`, so runs never overwrite each other and
a flow can find its previous report (tech-debt compares against it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_REPORTS_DIR = Path(".data/reports")
REPORT_JSON = "report.json"
_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True, slots=True)
class FlowOutcome:
    """What a run did: `succeeded` feeds ops_flow_runs, `exit_code` the CLI.

    They differ on purpose: a dependency scan that completed and found vulnerabilities did its
    job (succeeded) yet exits 1 so that CI and schedules notice the findings.
    """

    flow: str
    succeeded: bool
    exit_code: int
    report_path: Path
    summary: str
    measurements: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    markdown: str = ""
    table: list[dict[str, Any]] = field(default_factory=list)
    # Where the report was kept beyond the local disk (s3://...), when it was.
    report_url: str | None = None


def new_report_dir(reports_dir: Path, flow: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime(_TIMESTAMP_FORMAT)
    directory = reports_dir / flow / stamp
    directory.mkdir(parents=True, exist_ok=False)
    return directory


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return path


def previous_reports(reports_dir: Path, flow: str) -> list[Path]:
    """JSON reports of earlier runs of `flow`, newest first (timestamps sort as text)."""
    root = reports_dir / flow
    if not root.is_dir():
        return []
    runs = sorted((p for p in root.iterdir() if p.is_dir()), reverse=True)
    return [run / REPORT_JSON for run in runs if (run / REPORT_JSON).is_file()]


MAX_ERROR_LENGTH = 2000


def failure_outcome(flow: str, error: BaseException, reports_dir: Path) -> FlowOutcome:
    """A report for a run that stopped on an error, so even failures leave a JSON report."""
    message = f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH]
    directory = new_report_dir(reports_dir, flow)
    report = write_json(
        directory / REPORT_JSON, {"flow": flow, "succeeded": False, "error": message}
    )
    return FlowOutcome(
        flow=flow,
        succeeded=False,
        exit_code=2,
        report_path=report,
        summary=message,
        markdown=f"# {flow} failed\n\n```\n{message}\n```\n",
    )
