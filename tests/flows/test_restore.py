"""`python -m flows restore`: a backup in S3 (moto over HTTP) restored into a scratch PostgreSQL
database, sha256 and row counts checked; the newest at or before --at; never over data unless
--force."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flows.__main__ import main
from flows.backup.pipeline import BackupOptions, dump_to_s3
from flows.backup.postgres import Connection, take_inventory
from tests.flows.conftest import SOURCE_TABLES
from tests.services import create_scratch_postgres_database, drop_postgres_database

pytestmark = pytest.mark.postgres

EARLIER = datetime(2026, 11, 20, 3, 15, tzinfo=UTC)
LATER = datetime(2026, 11, 21, 3, 15, tzinfo=UTC)


@pytest.fixture
def target() -> Iterator[str]:
    url = create_scratch_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


def tables(url: str) -> dict[str, int]:
    with Connection.from_url(url).connect() as database:
        return take_inventory(database).tables


def restore(
    capsys: pytest.CaptureFixture[str], reports: Path, *options: str
) -> tuple[int, str, dict[str, Any]]:
    code = main(["--reports-dir", str(reports), "restore", *options])
    captured = capsys.readouterr()
    report = json.loads(Path(captured.out.strip().splitlines()[-1]).read_text())
    return code, captured.err, report


def test_the_newest_backup_round_trips_with_matching_row_counts(
    source_database: str,
    moto_endpoint: str,
    bucket: str,
    target: str,
    recording_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = dump_to_s3(BackupOptions(source_database, bucket, s3_endpoint_url=moto_endpoint))

    code, err, report = restore(
        capsys,
        tmp_path,
        *("--bucket", bucket, "--target-database-url", target),
        *("--s3-endpoint-url", moto_endpoint),
    )

    assert code == 0, err
    assert tables(target) == SOURCE_TABLES
    assert report["backup"] == f"s3://{bucket}/{manifest['object']['key']}"
    assert report["sha256"] == manifest["sha256"]
    assert report["verification"]["verified"] is True
    assert "restore download: done," in err  # progress, as log lines off a terminal


def test_at_picks_the_newest_backup_taken_at_or_before_it(
    source_database: str,
    moto_endpoint: str,
    bucket: str,
    target: str,
    recording_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = BackupOptions(source_database, bucket, s3_endpoint_url=moto_endpoint)
    dump_to_s3(options, now=EARLIER)
    with Connection.from_url(source_database).connect() as database:
        database.execute("INSERT INTO customers VALUES (4, 'barbara')")
    try:
        dump_to_s3(options, now=LATER)
        base = ["--bucket", bucket, "--s3-endpoint-url", moto_endpoint]

        code, err, report = restore(
            capsys, tmp_path, *base, "--target-database-url", target, "--at", "2026-11-20T12:00Z"
        )
        assert code == 0, err
        assert report["backup_created_at"] == EARLIER.isoformat()
        assert tables(target)["public.customers"] == 3

        code, err, _ = restore(
            capsys, tmp_path, *base, "--target-database-url", target, "--at", "2026-11-19T00:00Z"
        )
        assert code == 2
        assert "no backup in s3://" in err
        assert "taken at or before 2026-11-19T00:00:00+00:00" in err
    finally:
        with Connection.from_url(source_database).connect() as database:
            database.execute("DELETE FROM customers WHERE id = 4")


def test_a_database_with_tables_is_refused_unless_forced(
    source_database: str,
    moto_endpoint: str,
    bucket: str,
    target: str,
    recording_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dump_to_s3(BackupOptions(source_database, bucket, s3_endpoint_url=moto_endpoint))
    with Connection.from_url(target).connect() as database:
        database.execute("CREATE TABLE customers (id int PRIMARY KEY, name text)")
        database.execute("INSERT INTO customers VALUES (99, 'live data')")
    base = ["--bucket", bucket, "--s3-endpoint-url", moto_endpoint, "--target-database-url", target]

    code, err, report = restore(capsys, tmp_path, *base)

    assert code == 2
    assert "is not empty (1 tables)" in err
    assert "--force" in err
    assert report["succeeded"] is False
    assert tables(target) == {"public.customers": 1}  # untouched

    code, err, report = restore(capsys, tmp_path, *base, "--force")

    assert code == 0, err
    assert tables(target) == SOURCE_TABLES
    assert report["restored_over_existing_tables"] is True


def test_a_dump_that_does_not_match_its_manifest_is_not_restored(
    source_database: str,
    moto_endpoint: str,
    s3: Any,
    bucket: str,
    target: str,
    recording_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = dump_to_s3(BackupOptions(source_database, bucket, s3_endpoint_url=moto_endpoint))
    s3.put_object(Bucket=bucket, Key=manifest["object"]["key"], Body=b"PGDMP tampered")

    code, err, _ = restore(
        capsys,
        tmp_path,
        *("--bucket", bucket, "--target-database-url", target),
        *("--s3-endpoint-url", moto_endpoint),
    )

    assert code == 2
    assert "does not match its manifest" in err
    assert tables(target) == {}
