"""dependency-scan: the steps, as plain functions (flow.py runs the same steps as Prefect tasks).

pip-audit needs PyPI's JSON API or OSV over the network; this scan works from an OSV-format
advisory database on disk (a clone of github.com/pypa/advisory-database), so it runs offline
and gives the same answer for the same snapshot.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from flows.dependency_scan.advisories import AdvisoryDatabase
from flows.dependency_scan.dependencies import DependencySet, read_requirements, read_uv_lock
from flows.dependency_scan.formats import severity_counts, to_json, to_markdown, to_sarif
from flows.dependency_scan.ignores import load_ignore_rules
from flows.dependency_scan.scan import ScanResult, apply_ignores, find_vulnerabilities
from flows.reports import REPORT_JSON, FlowOutcome, new_report_dir, write_json

FLOW_NAME = "dependency-scan"
DEFAULT_ADVISORY_DB = Path(".data/advisory-database")


def read_dependencies(lock: Path | None, requirements: Path | None) -> DependencySet:
    if (lock is None) == (requirements is None):
        raise ValueError("give exactly one of a lock file or a requirements file")
    if lock is not None:
        return read_uv_lock(lock)
    assert requirements is not None
    return read_requirements(requirements)


def scan_dependencies(
    dependencies: DependencySet,
    advisory_db: Path,
    ignore_file: Path | None = None,
    today: date | None = None,
) -> ScanResult:
    database = AdvisoryDatabase(advisory_db)
    findings = find_vulnerabilities(dependencies.pinned, database)
    rules = load_ignore_rules(ignore_file) if ignore_file is not None else []
    marked, expired, unused = apply_ignores(findings, rules, today or datetime.now(UTC).date())
    return ScanResult(marked, len(dependencies.pinned), dependencies.unpinned, expired, unused)


def write_scan_reports(
    result: ScanResult, inputs: dict[str, str | None], reports_dir: Path
) -> FlowOutcome:
    directory = new_report_dir(reports_dir, FLOW_NAME)
    report = write_json(directory / REPORT_JSON, to_json(result, inputs))
    write_json(directory / "report.sarif", to_sarif(result))
    markdown = to_markdown(result)
    (directory / "report.md").write_text(markdown)
    active = len(result.active)
    return FlowOutcome(
        flow=FLOW_NAME,
        # The scan did its job whatever it found; the findings make the exit code, not a failure.
        succeeded=True,
        exit_code=1 if active else 0,
        report_path=report,
        summary=f"{active} unignored findings in {result.scanned} packages",
        measurements={"vulnerabilities": dict(severity_counts(result.active))},
        markdown=markdown,
        table=[
            {
                "severity": f.severity.rating,
                "package": f.package,
                "version": f.version,
                "advisory": f.id,
                "fixed in": ", ".join(f.fixed_versions),
            }
            for f in result.active
        ],
    )


def run_dependency_scan(
    *,
    lock: Path | None = None,
    requirements: Path | None = None,
    advisory_db: Path = DEFAULT_ADVISORY_DB,
    ignore_file: Path | None = None,
    reports_dir: Path,
) -> FlowOutcome:
    dependencies = read_dependencies(lock, requirements)
    result = scan_dependencies(dependencies, advisory_db, ignore_file)
    inputs = {
        "lock": str(lock) if lock else None,
        "requirements": str(requirements) if requirements else None,
        "advisory_db": str(advisory_db),
        "ignore": str(ignore_file) if ignore_file else None,
    }
    return write_scan_reports(result, inputs, reports_dir)
