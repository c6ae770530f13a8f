"""Reports kept in S3 (moto over HTTP) under reports/<flow>/ when FLOWS_REPORTS_BUCKET is set,
reached through boto3's standard endpoint variable, and read back for the next run's trend even
when the local disk starts empty (as a container's does)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from flows.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
REQUIREMENTS = FIXTURES / "flows" / "requirements-vulnerable.txt"


@pytest.fixture
def reports_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"slipway-reports-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("FLOWS_REPORTS_BUCKET", name)
    return name


def keys(moto_endpoint: str, bucket: str, prefix: str) -> list[str]:
    listing = boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(
        Bucket=bucket, Prefix=prefix
    )
    return sorted(item["Key"] for item in listing.get("Contents", []))


def read_json(moto_endpoint: str, bucket: str, key: str) -> Any:
    body = boto3.client("s3", endpoint_url=moto_endpoint).get_object(Bucket=bucket, Key=key)
    return json.loads(body["Body"].read())


def scan(reports_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    argv = ["--reports-dir", str(reports_dir), "dependency-scan", "-r", str(REQUIREMENTS)]
    assert main([*argv, "--advisory-db", str(FIXTURES / "advisories")]) == 1  # findings
    return capsys.readouterr().out.strip().splitlines()


def test_each_run_keeps_its_report_files_in_the_bucket_and_trends_against_the_last(
    reports_bucket: str,
    moto_endpoint: str,
    recording_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = scan(tmp_path / "first-container", capsys)
    # A second container: nothing of the first run on its disk.
    second = scan(tmp_path / "second-container", capsys)

    stored = keys(moto_endpoint, reports_bucket, "reports/dependency-scan/")
    runs = sorted({key.split("/")[2] for key in stored})
    assert len(runs) == 2
    for run in runs:
        assert {key.rsplit("/", 1)[1] for key in stored if f"/{run}/" in key} == {
            "report.json",
            "report.md",
            "report.sarif",
        }
    assert (
        first[-2] == f"report: s3://{reports_bucket}/reports/dependency-scan/{runs[0]}/report.json"
    )
    assert second[-2].endswith(f"/{runs[1]}/report.json")
    latest = read_json(
        moto_endpoint, reports_bucket, f"reports/dependency-scan/{runs[1]}/report.json"
    )
    assert latest["trend"]["previous_generated_at"] == runs[0]
    assert set(latest["trend"]["deltas"]["vulnerabilities"].values()) == {0.0}  # same findings
    assert latest["measurements"]["vulnerabilities"]["high"] == 1
    # The local copy says the same as the kept one.
    assert json.loads(Path(second[-1]).read_text()) == latest


def test_a_bucket_that_cannot_be_written_fails_the_run_clearly(
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    recording_database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("FLOWS_REPORTS_BUCKET", "no-such-reports-bucket")
    argv = ["--reports-dir", str(tmp_path), "dependency-scan", "-r", str(REQUIREMENTS)]

    assert main([*argv, "--advisory-db", str(FIXTURES / "advisories")]) == 2

    captured = capsys.readouterr()
    assert "report not kept in bucket no-such-reports-bucket" in captured.err
    assert "NoSuchBucket" in captured.err
    report = json.loads(Path(captured.out.strip().splitlines()[-1]).read_text())
    assert report["succeeded"] is False
