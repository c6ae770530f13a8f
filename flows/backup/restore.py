"""restore: the newest backup taken at or before a moment, into an empty database, checked.

The backup's manifest says what the dump holds (sha256, size, tables and their row counts);
the restore downloads the dump, refuses it unless its hash and size match, restores it, and
compares the restored tables and row counts with the manifest. The target must be empty unless
`force` (then pg_restore drops what the dump recreates): restoring over live data by accident
is the one mistake a restore tool must not make easy. The runbook is docs/operations.md.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flows.backup.pipeline import Verification, compare_inventories, download_dump
from flows.backup.postgres import BackupError, Connection, restore, take_inventory
from flows.reports import REPORT_JSON, FlowOutcome, new_report_dir, write_json
from flows.s3 import StorageError, get_bytes, s3_client

FLOW_NAME = "restore"
MAX_MANIFEST_BYTES = 10 * 1024 * 1024
# <prefix><database>/<UTC stamp>/manifest.json, as the backup flow writes them.
_MANIFEST_KEY = re.compile(r"(?:^|/)[^/]+/(\d{8}T\d{6}Z)/manifest\.json$")
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True, slots=True)
class RestoreOptions:
    bucket: str
    target_database_url: str
    prefix: str = "backups/"
    at: datetime | None = None
    s3_endpoint_url: str | None = None
    force: bool = False


def newest_manifest_key(client: Any, bucket: str, prefix: str, at: datetime | None) -> str:
    """The manifest of the newest backup taken at or before `at` (now when None)."""
    cleaned = prefix.strip("/")
    moment = at or datetime.now(UTC)
    best: tuple[datetime, str] | None = None
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{cleaned}/" if cleaned else ""
        )
        for page in pages:
            for item in page.get("Contents", []):
                match = _MANIFEST_KEY.search(item["Key"])
                if match is None:
                    continue
                taken = datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC)
                if taken <= moment and (best is None or taken > best[0]):
                    best = (taken, item["Key"])
    except (BotoCoreError, ClientError) as exc:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
        raise StorageError(f"S3 ListObjectsV2 failed: {code or type(exc).__name__}") from exc
    if best is None:
        raise BackupError(
            f"no backup in s3://{bucket}/{cleaned} taken at or before {moment.isoformat()}"
        )
    return best[1]


def _empty_or_forced(target: Connection, force: bool) -> dict[str, int]:
    with target.connect() as database:
        existing = take_inventory(database).tables
    if existing and not force:
        raise BackupError(
            f"the target database {target.database!r} is not empty ({len(existing)} tables): "
            "restore into a new, empty database (docs/operations.md), or pass --force to "
            "restore over it"
        )
    return existing


def run_restore(options: RestoreOptions, *, reports_dir: Path) -> FlowOutcome:
    target = Connection.from_url(options.target_database_url)
    client = s3_client(options.s3_endpoint_url)
    manifest_key = newest_manifest_key(client, options.bucket, options.prefix, options.at)
    manifest = json.loads(get_bytes(client, options.bucket, manifest_key, MAX_MANIFEST_BYTES))
    existing = _empty_or_forced(target, options.force)
    with tempfile.TemporaryDirectory(prefix="slipway-restore-") as directory:
        dump_path = Path(directory) / "backup.dump"
        size, sha256 = download_dump(client, manifest, dump_path, "restore download")
        if sha256 != manifest["sha256"] or size != manifest["bytes"]:
            raise BackupError(
                f"the dump {manifest['object']['key']} does not match its manifest (sha256 "
                f"{sha256}, {size} bytes; expected {manifest['sha256']}, {manifest['bytes']}): "
                "it was not restored"
            )
        restore(target, dump_path, clean=bool(existing))
    with target.connect() as database:
        restored = take_inventory(database).tables
    verification = compare_inventories(manifest["tables"], restored)
    return write_restore_report(
        manifest, target.database, bool(existing), verification, reports_dir
    )


def write_restore_report(
    manifest: dict[str, Any],
    database: str,
    forced: bool,
    verification: Verification,
    reports_dir: Path,
) -> FlowOutcome:
    directory = new_report_dir(reports_dir, FLOW_NAME)
    source = f"s3://{manifest['object']['bucket']}/{manifest['object']['key']}"
    report = {
        "flow": FLOW_NAME,
        "backup": source,
        "backup_created_at": manifest["created_at"],
        "sha256": manifest["sha256"],
        "target_database": database,
        "restored_over_existing_tables": forced,
        "verification": asdict(verification),
    }
    path = write_json(directory / REPORT_JSON, report)
    verdict = (
        "tables and row counts match the manifest"
        if verification.verified
        else (f"**DIFFERS from the manifest**: {json.dumps(asdict(verification))}")
    )
    markdown = (
        f"# Restore\n\n- backup: `{source}` taken {manifest['created_at']}\n"
        f"- sha256 `{manifest['sha256']}` checked\n- into database `{database}`\n"
        f"- {manifest['table_count']} tables, {manifest['row_count']} rows: {verdict}\n"
    )
    (directory / "report.md").write_text(markdown)
    return FlowOutcome(
        flow=FLOW_NAME,
        succeeded=verification.verified,
        exit_code=0 if verification.verified else 1,
        report_path=path,
        summary=f"restored {source} into {database}: "
        + ("verified" if verification.verified else "VERIFY FAILED"),
        measurements={
            "restore": {"tables": manifest["table_count"], "rows": manifest["row_count"]}
        },
        markdown=markdown,
    )
