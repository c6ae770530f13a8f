"""`python -m flows <name> [options]`: run one ops flow once.

The plain pipeline runs in this process, without a Prefect server; under a Prefect flow run
the same code also writes artifacts. The JSON report's path is the last line printed.
Exit codes: 0 done, 1 done with findings (dependency-scan) or mismatches left unresolved,
2 failed (usage, unreachable service, bad input). `python -m flows serve` serves the scheduled
deployments of prefect.yaml (what `make flows` runs); `python -m flows deploy` registers them
for the work pool's workers (what the deploy pipeline runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from flows.reports import FlowOutcome, failure_outcome
from flows.settings import flows_settings

if TYPE_CHECKING:
    from flows.prefect_support import AfterKept


def _iso_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date/time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows", description="Run one Slipway ops flow once."
    )
    parser.add_argument(
        "--reports-dir",
        type=Path,
        default=flows_settings().reports_dir,
        help="where reports are written (default $FLOWS_REPORTS_DIR or .data/reports); "
        "FLOWS_REPORTS_BUCKET also keeps them in S3 under reports/<flow>/",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="<name>")

    scan = commands.add_parser(
        "dependency-scan", help="match locked dependencies against OSV advisories"
    )
    source = scan.add_mutually_exclusive_group(required=True)
    source.add_argument("--lock", type=Path, metavar="PATH", help="a uv.lock file")
    source.add_argument(
        "-r", "--requirements", type=Path, metavar="REQUIREMENTS", help="a requirements file"
    )
    scan.add_argument(
        "--advisory-db",
        type=Path,
        metavar="DIR",
        default=None,
        help="OSV advisory database (PyPA layout: vulns/<package>/*.yaml); "
        "default .data/advisory-database",
    )
    scan.add_argument(
        "--advisory-db-url",
        metavar="URL",
        default=None,
        help="zip of OSV JSON advisories fetched into --advisory-db when no database is there "
        "(or it is too old); default $FLOWS_ADVISORY_DB_URL or OSV's PyPI export",
    )
    scan.add_argument(
        "--ignore", type=Path, metavar="FILE", help="TOML file of accepted advisories"
    )

    backup = commands.add_parser("backup", help="pg_dump to S3 with a manifest, then verify")
    backup.add_argument("--database-url", required=True, help="the PostgreSQL database to dump")
    backup.add_argument("--bucket", required=True)
    backup.add_argument("--prefix", default="backups/", help="key prefix (default backups/)")
    backup.add_argument("--kms-key-id", help="SSE-KMS key for the uploaded objects")
    backup.add_argument("--s3-endpoint-url", help="an S3-compatible endpoint instead of AWS")
    backup.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="restore into a scratch database and compare tables and row counts (default on)",
    )

    restore = commands.add_parser(
        "restore",
        help="restore the newest backup taken at or before --at into an empty database, "
        "checking its sha256 and row counts",
    )
    restore.add_argument("--bucket", required=True, help="the backup bucket")
    restore.add_argument("--prefix", default="backups/", help="key prefix (default backups/)")
    restore.add_argument(
        "--at",
        type=_iso_datetime,
        metavar="ISO",
        help="restore the newest backup taken at or before this time (default: now)",
    )
    restore.add_argument(
        "--target-database-url", required=True, help="an empty PostgreSQL database"
    )
    restore.add_argument("--s3-endpoint-url", help="an S3-compatible endpoint instead of AWS")
    restore.add_argument(
        "--force",
        action="store_true",
        help="restore even though the target database has tables (pg_restore --clean)",
    )

    reconcile = commands.add_parser(
        "reconcile-payments", help="compare local payments with Stripe, replay missed events"
    )
    reconcile.add_argument("--database-url", required=True)
    reconcile.add_argument(
        "--since", type=_iso_datetime, metavar="ISO", help="only payments created since then"
    )
    reconcile.add_argument(
        "--dry-run", action="store_true", help="report only; replay no events, change nothing"
    )

    debt = commands.add_parser("tech-debt", help="hotspots, dead code, markers, lint, trend")
    debt.add_argument(
        "--repo",
        type=Path,
        required=True,
        metavar="PATH",
        help="a git working tree; without history there, TECH_DEBT_REPO_URL is cloned",
    )
    debt.add_argument(
        "--since",
        type=_positive_int,
        metavar="DAYS",
        default=90,
        help="churn window in days (default 90)",
    )
    debt.add_argument(
        "--include-tests",
        action="store_true",
        help="rank test files as hotspots too (generated files never are)",
    )

    serve = commands.add_parser(
        "serve", help="serve prefect.yaml's scheduled deployments (needs a Prefect API)"
    )
    serve.add_argument("--prefect-yaml", type=Path, default=Path("prefect.yaml"))

    deploy = commands.add_parser(
        "deploy",
        help="register or update prefect.yaml's deployments with PREFECT_API_URL (creating the "
        "work pool if missing); one line per deployment",
    )
    deploy.add_argument("--prefect-yaml", type=Path, default=Path("prefect.yaml"))
    deploy.add_argument(
        "--version",
        default=flows_settings().image_tag,
        help="the deployments' version, e.g. the image tag (default $FLOWS_IMAGE_TAG)",
    )
    deploy.add_argument(
        "--wait",
        type=_positive_int,
        metavar="SECONDS",
        default=120,
        help="how long to wait for the API to answer (default 120)",
    )
    return parser


def _deploy(args: argparse.Namespace) -> int:
    from flows.deployments import register_deployments

    try:
        lines = register_deployments(args.prefect_yaml, args.version, args.wait)
    except Exception as exc:
        print(f"error: registration failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0


def _dependency_scan(args: argparse.Namespace) -> FlowOutcome:
    from flows.dependency_scan.pipeline import DEFAULT_ADVISORY_DB, run_dependency_scan

    return run_dependency_scan(
        lock=args.lock,
        requirements=args.requirements,
        advisory_db=args.advisory_db or DEFAULT_ADVISORY_DB,
        advisory_db_url=args.advisory_db_url,
        ignore_file=args.ignore,
        reports_dir=args.reports_dir,
    )


def _backup(args: argparse.Namespace) -> FlowOutcome:
    from flows.backup.pipeline import BackupOptions, run_backup

    return run_backup(
        BackupOptions(
            database_url=args.database_url,
            bucket=args.bucket,
            prefix=args.prefix,
            kms_key_id=args.kms_key_id,
            s3_endpoint_url=args.s3_endpoint_url,
            verify=args.verify,
        ),
        reports_dir=args.reports_dir,
    )


def _restore(args: argparse.Namespace) -> FlowOutcome:
    from flows.backup.restore import RestoreOptions, run_restore

    return run_restore(
        RestoreOptions(
            bucket=args.bucket,
            target_database_url=args.target_database_url,
            prefix=args.prefix,
            at=args.at,
            s3_endpoint_url=args.s3_endpoint_url,
            force=args.force,
        ),
        reports_dir=args.reports_dir,
    )


def _reconcile(args: argparse.Namespace) -> FlowOutcome:
    from flows.reconcile_payments.pipeline import run_reconciliation

    return run_reconciliation(
        database_url=args.database_url,
        since=args.since,
        dry_run=args.dry_run,
        reports_dir=args.reports_dir,
    )


def _tech_debt(args: argparse.Namespace) -> FlowOutcome:
    from flows.tech_debt.pipeline import run_tech_debt

    return run_tech_debt(
        repo=args.repo,
        since_days=args.since,
        include_tests=args.include_tests,
        reports_dir=args.reports_dir,
    )


RUNNERS: dict[str, Callable[[argparse.Namespace], FlowOutcome]] = {
    "dependency-scan": _dependency_scan,
    "backup": _backup,
    "restore": _restore,
    "reconcile-payments": _reconcile,
    "tech-debt": _tech_debt,
}


def _after_kept(command: str) -> AfterKept | None:
    if command == "tech-debt":
        from flows.tech_debt.tracking_issue import publish_tracking_issue

        return publish_tracking_issue
    return None


def run_flow(args: argparse.Namespace) -> int:
    from flows.prefect_support import complete_run

    started_at = datetime.now(UTC)
    try:
        outcome = RUNNERS[args.command](args)
    except Exception as exc:
        outcome = failure_outcome(args.command, exc, args.reports_dir)
        print(f"error: {outcome.summary}", file=sys.stderr)
    else:
        print(outcome.summary)
    outcome = complete_run(outcome, started_at, _after_kept(args.command))
    if outcome.report_url:
        print(f"report: {outcome.report_url}")
    print(outcome.report_path)
    return outcome.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from flows.deployments import serve_deployments

        serve_deployments(args.prefect_yaml)
        return 0
    if args.command == "deploy":
        return _deploy(args)
    return run_flow(args)


if __name__ == "__main__":
    sys.exit(main())
