"""dependency-scan: the steps, as plain functions (flow.py runs the same steps as Prefect tasks).

pip-audit needs PyPI's JSON API or OSV over the network; this scan works from an OSV-format
advisory database on disk (a clone of github.com/pypa/advisory-database, or OSV's PyPI export
which the scan fetches itself when none is there), so it gives the same answer for the same
snapshot, and the report says how old that snapshot is.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from flows.dependency_scan.advisories import AdvisoryDatabase
from flows.dependency_scan.database_fetch import DatabaseInfo, ensure_database
from flows.dependency_scan.dependencies import DependencySet, read_requirements, read_uv_lock
from flows.dependency_scan.formats import severity_counts, to_json, to_markdown, to_sarif
from flows.dependency_scan.ignores import load_ignore_rules
from flows.dependency_scan.scan import ScanResult, apply_ignores, find_vulnerabilities
from flows.reports import REPORT_JSON, FlowOutcome, new_report_dir, write_json
from flows.settings import flows_settings

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


def prepare_advisory_database(advisory_db: Path, advisory_db_url: str | None) -> DatabaseInfo:
    settings = flows_settings()
    return ensure_database(
        advisory_db,
        advisory_db_url or settings.advisory_db_url,
        settings.advisory_db_max_age_days,
    )


def write_scan_reports(
    result: ScanResult,
    inputs: dict[str, str | None],
    reports_dir: Path,
    database: DatabaseInfo | None = None,
) -> FlowOutcome:
    directory = new_report_dir(reports_dir, FLOW_NAME)
    now = datetime.now(UTC)
    document = to_json(result, inputs)
    if database is not None:
        document["advisory_database"] = database.as_json(now)
    report = write_json(directory / REPORT_JSON, document)
    write_json(directory / "report.sarif", to_sarif(result))
    markdown = to_markdown(result)
    if database is not None:
        markdown += f"\nScanned against the {database.describe(now)}.\n"
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
    advisory_db_url: str | None = None,
    ignore_file: Path | None = None,
    reports_dir: Path,
) -> FlowOutcome:
    dependencies = read_dependencies(lock, requirements)
    database = prepare_advisory_database(advisory_db, advisory_db_url)
    result = scan_dependencies(dependencies, advisory_db, ignore_file)
    inputs = {
        "lock": str(lock) if lock else None,
        "requirements": str(requirements) if requirements else None,
        "advisory_db": str(advisory_db),
        "ignore": str(ignore_file) if ignore_file else None,
    }
    return write_scan_reports(result, inputs, reports_dir, database)
