"""backup: pg_dump streamed to S3 (moto server over HTTP) with a manifest, restore verification."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from flows.__main__ import main
from flows.backup.pipeline import (
    BackupOptions,
    compare_inventories,
    dump_to_s3,
    object_key,
    run_backup,
    verify_backup,
)
from flows.backup.postgres import Connection
from tests.flows.conftest import SOURCE_TABLES
from tests.flows.helpers import flow_runs

pytestmark = pytest.mark.postgres


def verify_databases_left(source_url: str) -> list[str]:
    with Connection.from_url(source_url).connect() as database:
        rows = database.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'slipway_verify_%'"
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_backup_round_trip_is_encrypted_described_and_verified(
    source_database: str, moto_endpoint: str, s3: Any, bucket: str, kms_key_id: str, tmp_path: Path
) -> None:
    options = BackupOptions(
        database_url=source_database,
        bucket=bucket,
        prefix="nightly/",
        kms_key_id=kms_key_id,
        s3_endpoint_url=moto_endpoint,
        verify=True,
    )

    outcome = run_backup(options, reports_dir=tmp_path)

    assert outcome.succeeded
    assert outcome.exit_code == 0
    report = json.loads(outcome.report_path.read_text())
    manifest = report["manifest"]
    assert report["verification"]["verified"] is True
    assert manifest["tables"] == SOURCE_TABLES
    assert manifest["server_version"].split(".")[0].isdigit()
    key = manifest["object"]["key"]
    assert key.startswith("nightly/")
    assert key.endswith(".dump")
    stored = s3.get_object(Bucket=bucket, Key=key)
    body = stored["Body"].read()
    assert body.startswith(b"PGDMP")  # pg_dump's custom format
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["bytes"] == len(body)
    assert stored["ServerSideEncryption"] == "aws:kms"
    assert kms_key_id in stored["SSEKMSKeyId"]
    stored_manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=manifest["manifest_key"])["Body"].read()
    )
    assert stored_manifest["sha256"] == manifest["sha256"]
    assert stored_manifest["tables"] == SOURCE_TABLES
    assert verify_databases_left(source_database) == []


def test_verification_refuses_a_dump_that_changed_after_upload(
    source_database: str, moto_endpoint: str, s3: Any, bucket: str
) -> None:
    options = BackupOptions(source_database, bucket, s3_endpoint_url=moto_endpoint)
    manifest = dump_to_s3(options)
    s3.put_object(Bucket=bucket, Key=manifest["object"]["key"], Body=b"PGDMP tampered")

    verification = verify_backup(options, manifest)

    assert verification.verified is False
    assert verification.sha256_matches is False


def test_comparison_names_missing_extra_and_drifted_tables() -> None:
    verification = compare_inventories(
        {"public.a": 1, "public.b": 2, "public.c": 3}, {"public.a": 1, "public.b": 5, "public.d": 0}
    )

    assert not verification.verified
    assert verification.missing_tables == ["public.c"]
    assert verification.extra_tables == ["public.d"]
    assert verification.row_count_differences == {"public.b": {"expected": 2, "restored": 5}}
    assert compare_inventories({"public.a": 1}, {"public.a": 1}).verified


def test_object_keys_are_grouped_by_database_and_time() -> None:
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    assert object_key("backups/", "app", moment) == "backups/app/20261125T030000Z/app.dump"
    assert object_key("", "app", moment) == "app/20261125T030000Z/app.dump"


def test_backup_cli_without_verify_reports_and_records(
    source_database: str,
    moto_endpoint: str,
    bucket: str,
    recording_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--reports-dir", str(tmp_path), "backup", "--database-url", source_database]
    argv += ["--bucket", bucket, "--s3-endpoint-url", moto_endpoint, "--no-verify"]

    assert main(argv) == 0

    output = capsys.readouterr().out.strip().splitlines()
    report = json.loads(Path(output[-1]).read_text())
    assert report["verification"] is None
    assert report["manifest"]["object"]["key"].startswith("backups/")
    assert flow_runs(recording_database, "backup")[-1]["result"] == "success"


def test_backup_to_a_missing_bucket_fails_without_leaking_the_password(
    source_database: str,
    moto_endpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_password = source_database.replace("postgres@", "postgres:sekr1t-value@", 1)
    argv = ["--reports-dir", str(tmp_path), "backup", "--database-url", with_password]
    argv += ["--bucket", "no-such-bucket", "--s3-endpoint-url", moto_endpoint]

    assert main(argv) == 2

    captured = capsys.readouterr()
    assert "NoSuchBucket" in captured.err
    report_text = Path(captured.out.strip().splitlines()[-1]).read_text()
    assert "sekr1t-value" not in captured.out + captured.err + report_text


def test_a_database_that_does_not_exist_is_a_clean_failure(
    source_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = source_database.rsplit("/", 1)[0] + "/slipway_no_such_database"
    argv = ["--reports-dir", str(tmp_path), "backup", "--database-url", missing, "--bucket", "b"]

    assert main(argv) == 2

    assert "cannot connect to database 'slipway_no_such_database'" in capsys.readouterr().err
