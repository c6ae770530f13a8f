"""backup: pg_dump -Fc streamed to S3 with a JSON manifest, then (optionally) a restore test.

A backup that was never restored is a hope, not a backup: with verification on, the object is
downloaded again, its sha256 checked against the manifest, restored into a scratch database
on the same server and compared table by table, row count by row count; the scratch database
is dropped whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flows.backup.postgres import (
    BackupError,
    Connection,
    Inventory,
    exported_snapshot,
    restore,
    scratch_database,
    start_dump,
    take_inventory,
    tool_version,
)
from flows.progress import ByteProgress
from flows.reports import REPORT_JSON, FlowOutcome, new_report_dir, write_json
from flows.s3 import StoredObject, download, put_bytes, s3_client, upload_stream

FLOW_NAME = "backup"
MANIFEST_VERSION = 1


@dataclass(frozen=True, slots=True)
class BackupOptions:
    database_url: str
    bucket: str
    prefix: str = "backups/"
    kms_key_id: str | None = None
    s3_endpoint_url: str | None = None
    verify: bool = True


@dataclass(frozen=True, slots=True)
class Verification:
    verified: bool
    sha256_matches: bool
    missing_tables: list[str] = field(default_factory=list)
    extra_tables: list[str] = field(default_factory=list)
    row_count_differences: dict[str, dict[str, int]] = field(default_factory=dict)


def object_key(prefix: str, database: str, now: datetime) -> str:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    cleaned = prefix.strip("/")
    return f"{cleaned + '/' if cleaned else ''}{database}/{stamp}/{database}.dump"


def dump_to_s3(options: BackupOptions, now: datetime | None = None) -> dict[str, Any]:
    """Dump and upload; returns the manifest (also stored next to the dump as manifest.json)."""
    connection = Connection.from_url(options.database_url)
    client = s3_client(options.s3_endpoint_url)
    created_at = now or datetime.now(UTC)
    key = object_key(options.prefix, connection.database, created_at)
    with (
        exported_snapshot(connection) as (snapshot, inventory),
        tempfile.TemporaryFile() as messages,
    ):
        dump = start_dump(connection, snapshot, messages)
        assert dump.stdout is not None
        try:
            # pg_dump's output size is not known in advance: bytes and rate, no share.
            with ByteProgress("backup upload") as progress:
                stored = upload_stream(
                    client,
                    dump.stdout,
                    options.bucket,
                    key,
                    options.kms_key_id,
                    on_bytes=progress.advance,
                )
        finally:
            dump.stdout.close()
            returncode = dump.wait()
        messages.seek(0)
        errors = messages.read().decode(errors="replace")
        if returncode != 0:
            # The object is complete but holds a failed dump: remove it so no one restores it.
            with contextlib.suppress(BotoCoreError, ClientError):
                client.delete_object(Bucket=options.bucket, Key=key)
            raise BackupError(f"pg_dump exited {returncode}: {errors.strip()[-2000:]}")
    manifest = build_manifest(connection.database, inventory, stored, created_at)
    manifest_key = key.rsplit("/", 1)[0] + "/manifest.json"
    manifest["manifest_key"] = manifest_key
    put_bytes(
        client,
        options.bucket,
        manifest_key,
        json.dumps(manifest, indent=2).encode(),
        options.kms_key_id,
    )
    return manifest


def build_manifest(
    database: str, inventory: Inventory, stored: StoredObject, created_at: datetime
) -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "format": "pg_dump custom (-Fc)",
        "database": database,
        "created_at": created_at.isoformat(),
        "server_version": inventory.server_version,
        "pg_dump_version": tool_version("pg_dump"),
        "object": asdict(stored),
        "sha256": stored.sha256,
        "bytes": stored.bytes,
        "tables": inventory.tables,
        "table_count": len(inventory.tables),
        "row_count": sum(inventory.tables.values()),
    }


def compare_inventories(expected: dict[str, int], restored: dict[str, int]) -> Verification:
    differences = {
        table: {"expected": count, "restored": restored[table]}
        for table, count in expected.items()
        if table in restored and restored[table] != count
    }
    missing = sorted(set(expected) - set(restored))
    extra = sorted(set(restored) - set(expected))
    return Verification(
        verified=not (differences or missing or extra),
        sha256_matches=True,
        missing_tables=missing,
        extra_tables=extra,
        row_count_differences=differences,
    )


def download_dump(client: Any, manifest: dict[str, Any], path: Path, label: str) -> tuple[int, str]:
    """Download the dump a manifest describes to PATH, showing progress; its size and sha256."""
    with ByteProgress(label, int(manifest["bytes"])) as progress:
        return download(
            client,
            manifest["object"]["bucket"],
            manifest["object"]["key"],
            path,
            on_bytes=progress.advance,
        )


def verify_backup(options: BackupOptions, manifest: dict[str, Any]) -> Verification:
    """Download the dump, check its hash, restore it into a scratch database and compare."""
    client = s3_client(options.s3_endpoint_url)
    connection = Connection.from_url(options.database_url)
    with tempfile.TemporaryDirectory(prefix="slipway-backup-") as directory:
        dump_path = Path(directory) / "backup.dump"
        size, sha256 = download_dump(client, manifest, dump_path, "backup verification download")
        if sha256 != manifest["sha256"] or size != manifest["bytes"]:
            return Verification(verified=False, sha256_matches=False)
        with scratch_database(connection) as scratch:
            restore(scratch, dump_path)
            with scratch.connect() as restored:
                inventory = take_inventory(restored)
    return compare_inventories(manifest["tables"], inventory.tables)


def _markdown(manifest: dict[str, Any], verification: Verification | None) -> str:
    lines = [
        "# Backup",
        "",
        f"- object: `s3://{manifest['object']['bucket']}/{manifest['object']['key']}`",
        f"- size: {manifest['bytes']} bytes, sha256 `{manifest['sha256']}`",
        f"- server: PostgreSQL {manifest['server_version']}",
        f"- {manifest['table_count']} tables, {manifest['row_count']} rows",
    ]
    if verification is None:
        lines.append("- verification: skipped (--no-verify)")
    elif verification.verified:
        lines.append("- verification: restored into a scratch database; tables and rows match")
    else:
        lines.append(f"- verification: **FAILED** {json.dumps(asdict(verification))}")
    lines += ["", "| table | rows |", "|---|---|"]
    lines += [f"| {table} | {count} |" for table, count in manifest["tables"].items()]
    return "\n".join(lines) + "\n"


def write_backup_report(
    manifest: dict[str, Any], verification: Verification | None, reports_dir: Path
) -> FlowOutcome:
    directory = new_report_dir(reports_dir, FLOW_NAME)
    report = {
        "flow": FLOW_NAME,
        "manifest": manifest,
        "verification": asdict(verification) if verification else None,
    }
    path = write_json(directory / REPORT_JSON, report)
    markdown = _markdown(manifest, verification)
    (directory / "report.md").write_text(markdown)
    succeeded = verification is None or verification.verified
    verdict = "" if verification is None else (", verified" if succeeded else ", VERIFY FAILED")
    return FlowOutcome(
        flow=FLOW_NAME,
        succeeded=succeeded,
        exit_code=0 if succeeded else 1,
        report_path=path,
        summary=f"backed up {manifest['table_count']} tables, {manifest['bytes']} bytes{verdict}",
        measurements={
            "backup": {
                "bytes": manifest["bytes"],
                "tables": manifest["table_count"],
                "rows": manifest["row_count"],
            }
        },
        markdown=markdown,
        table=[{"table": table, "rows": rows} for table, rows in manifest["tables"].items()],
    )


def run_backup(options: BackupOptions, *, reports_dir: Path) -> FlowOutcome:
    manifest = dump_to_s3(options)
    verification = verify_backup(options, manifest) if options.verify else None
    return write_backup_report(manifest, verification, reports_dir)
