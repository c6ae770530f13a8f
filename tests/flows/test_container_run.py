"""The four flows as the flows image runs them: a working directory with the image's files and no
`.git`, no advisory database on disk, reports to a bucket (moto over HTTP), every service
reached as in AWS (PostgreSQL, the Stripe emulator, S3 through boto3's endpoint variable, the
advisory zip over HTTP, the repository by clone). Each flow runs twice, each time in a fresh
"container" (an empty disk); every report is in the bucket and the second shows a trend
against the first."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from flows.__main__ import main
from tests.conftest import delete_all_rows
from tests.flows.advisory_server import build_osv_zip, serve_directory
from tests.flows.test_tech_debt import BRANCHY, commit, git

pytest_plugins = ("tests.api.stripe_emulator",)
pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
# What Dockerfile.flows copies into /app.
IMAGE_FILES = ("alembic.ini", "prefect.yaml", "pyproject.toml", "uv.lock", "api", "flows")
FLOWS = ("backup", "reconcile-payments", "dependency-scan", "tech-debt")


@pytest.fixture
def aws_like(
    moto_endpoint: str,
    bucket: str,
    postgres_url: str,
    fresh_localstripe_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The worker's environment, pointing at the local counterparts; yields the reports bucket."""
    reports = f"slipway-reports-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=reports)
    remote = tmp_path / "remote"
    remote.mkdir()
    git(remote, "init", "-q", "-b", "main")
    commit(remote, {"app/hot.py": BRANCHY}, "one", days_ago=3)
    commit(remote, {"app/hot.py": BRANCHY + "\n# TODO: split\n"}, "two", days_ago=2)
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(remote), str(bare))
    advisories = tmp_path / "osv"
    advisories.mkdir()
    build_osv_zip(advisories / "all.zip")
    with serve_directory(advisories) as osv_url:
        for name, value in {
            "AWS_ENDPOINT_URL": moto_endpoint,
            "FLOWS_REPORTS_BUCKET": reports,
            "DATABASE_URL": postgres_url,
            "STRIPE_SECRET_KEY": "sk_test_slipway_container",
            # Reconciliation compares every subscription Stripe holds: an emulator of its own.
            "STRIPE_API_BASE": fresh_localstripe_url,
            "FLOWS_ADVISORY_DB_URL": f"{osv_url}/all.zip",
            "TECH_DEBT_REPO_URL": f"file://{bare}",
            "BACKUP_BUCKET": bucket,
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("TECH_DEBT_GIT_TOKEN", raising=False)
        yield reports
    delete_all_rows(postgres_url)


def container(tmp_path: Path, name: str) -> Path:
    """A fresh copy of the image's /app: its files, no .git, nothing under .data."""
    app = tmp_path / name
    app.mkdir()
    for item in IMAGE_FILES:
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, app / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, app / item)
    return app


def run_all(app: Path, source_database: str, bucket: str, postgres_url: str) -> dict[str, int]:
    """Each flow with the parameters its deployment passes (prefect.yaml), from `app`."""
    arguments = {
        "backup": ["--database-url", source_database, "--bucket", bucket],
        "reconcile-payments": ["--database-url", postgres_url],
        "dependency-scan": ["--lock", "uv.lock"],
        "tech-debt": ["--repo", "."],
    }
    return {flow: main([flow, *arguments[flow]]) for flow in FLOWS}


def kept_reports(endpoint: str, reports: str, flow: str) -> list[dict[str, Any]]:
    s3 = boto3.client("s3", endpoint_url=endpoint)
    listing = s3.list_objects_v2(Bucket=reports, Prefix=f"reports/{flow}/")
    keys = sorted(i["Key"] for i in listing.get("Contents", []) if i["Key"].endswith(".json"))
    return [json.loads(s3.get_object(Bucket=reports, Key=key)["Body"].read()) for key in keys]


def test_each_flow_completes_in_the_image_layout_keeps_its_report_and_trends(
    aws_like: str,
    moto_endpoint: str,
    source_database: str,
    bucket: str,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for run in ("first", "second"):
        app = container(tmp_path, f"{run}-container")
        monkeypatch.chdir(app)
        assert not (app / ".git").exists()
        assert not (app / ".data").exists()

        codes = run_all(app, source_database, bucket, postgres_url)

        errors = capsys.readouterr().err
        assert codes == dict.fromkeys(FLOWS, 0), errors

    for flow in FLOWS:
        first, second = kept_reports(moto_endpoint, aws_like, flow)
        assert first.get("succeeded", True) is not False
        assert first["trend"] is None  # nothing before it
        assert second["trend"]["previous_generated_at"] == first["generated_at"], flow
    scan = kept_reports(moto_endpoint, aws_like, "dependency-scan")[-1]
    assert scan["advisory_database"]["source"].endswith("/all.zip")
    debt = kept_reports(moto_endpoint, aws_like, "tech-debt")[-1]
    assert debt["repo"].startswith("file://")
    assert [h["file"] for h in debt["hotspots"]] == ["app/hot.py"]
