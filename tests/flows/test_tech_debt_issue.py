"""`python -m flows tech-debt` keeps one GitHub tracking issue, checked against a local stub of
GitHub's issues API that records every call: created once with the label, then edited in place;
skipped with a message when nothing is configured; GitHub's refusals reported without the token,
the report kept either way."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from flows.__main__ import main
from flows.tech_debt.tracking_issue import LABEL, MARKER
from tests.flows.github_stub import GitHubStub, github_stub
from tests.flows.helpers import flow_runs
from tests.flows.test_tech_debt import BRANCHY, commit, git
from tests.live_server import free_port

TOKEN = "github_pat_test_0123456789abcdef"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, {"pkg/hot.py": BRANCHY}, "hot v1")
    commit(repo, {"pkg/hot.py": BRANCHY + "\n"}, "hot v2")
    commit(repo, {"pkg/warm.py": BRANCHY.replace("decide", "choose")}, "warm")
    return repo


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubStub]:
    for name in ("TECH_DEBT_GIT_TOKEN", "TECH_DEBT_GIT_TOKEN_SECRET_ARN", "FLOWS_REPORTS_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    with github_stub() as stub:
        monkeypatch.setenv("GITHUB_API_URL", stub.url)
        monkeypatch.setenv("GITHUB_REPOSITORY", stub.repository)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        yield stub


def run(project: Path, reports: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["--reports-dir", str(reports), "tech-debt", "--repo", str(project)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_first_run_creates_the_issue_later_runs_edit_that_one_in_place(
    project: Path,
    tmp_path: Path,
    stub: GitHubStub,
    recording_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Other tech-debt issues (refactoring work picked from the tracking issue) and a pull request
    # carry the label too: only the marker makes an issue the tracking one.
    for title in ("Refactor pkg/hot.py", "Split the billing service", "Dead code sweep"):
        stub.add_issue(title, "why it hurts...", [LABEL])
    stub.add_issue("Refactor PR", MARKER, [LABEL], pull_request={"url": "..."})

    code, out, err = run(project, tmp_path / "reports", capsys)

    assert code == 0, err
    assert [c.method for c in stub.calls if c.method != "GET"] == ["POST"]
    created = stub.calls[-1]
    assert created.path == "/repos/acme/shop/issues"
    assert created.authorization == f"Bearer {TOKEN}"
    assert created.body["labels"] == [LABEL]
    first_report = Path(out.strip().splitlines()[-1])
    body = created.body["body"]
    assert MARKER in body
    assert "| 1 | `pkg/hot.py` |" in body
    assert "first report" in body  # no earlier report, no trend yet
    assert str(first_report.with_name("report.md")) in body
    number = max(stub.issues)
    assert f"tracking issue created: https://github.com/acme/shop/issues/{number}" in out

    # Someone closed it; the hot file grew.
    stub.issues[number]["state"] = "closed"
    commit(project, {"pkg/hot.py": BRANCHY + BRANCHY.replace("decide", "decide_more")}, "grow")
    stub.calls.clear()

    code, out, err = run(project, tmp_path / "reports", capsys)

    assert code == 0, err
    assert "POST" not in stub.methods()
    # Five labelled issues, two a page: the listing followed Link: rel="next" to the end.
    assert stub.methods() == ["GET", "GET", "GET", "PATCH"]
    edited = stub.calls[-1]
    assert edited.path == f"/repos/acme/shop/issues/{number}"
    assert stub.issues[number]["state"] == "open"
    second_report = Path(out.strip().splitlines()[-1])
    body = edited.body["body"]
    hot_row = next(line for line in body.splitlines() if "`pkg/hot.py`" in line)
    assert "| 1 | `pkg/hot.py` |" in hot_row
    assert "| +" in hot_row  # its score went up since the first report
    assert "| = |" in next(line for line in body.splitlines() if "`pkg/warm.py`" in line)
    assert str(second_report.with_name("report.md")) in body
    assert "total_complexity +" in body
    assert f"tracking issue updated: https://github.com/acme/shop/issues/{number}" in out
    assert len([i for i in stub.issues.values() if MARKER in i["body"]]) == 2  # ours + the PR


@pytest.mark.parametrize("missing", ["GITHUB_TOKEN", "GITHUB_REPOSITORY"])
def test_without_a_token_or_repository_the_update_is_skipped_and_says_so(
    missing: str,
    project: Path,
    tmp_path: Path,
    stub: GitHubStub,
    recording_database: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(missing)

    code, out, err = run(project, tmp_path / "reports", capsys)

    assert code == 0, err
    assert stub.calls == []
    assert "tracking issue not updated" in out
    assert missing in out
    assert Path(out.strip().splitlines()[-1]).is_file()


@pytest.mark.parametrize(
    ("status", "message", "hint"),
    [
        (401, "Bad credentials", "invalid or expired"),
        (403, "Resource not accessible by personal access token", "Issues: write"),
        (502, "Server Error", ""),
    ],
)
def test_github_refusals_are_reported_without_the_token_and_the_report_is_kept(
    status: int,
    message: str,
    hint: str,
    project: Path,
    tmp_path: Path,
    stub: GitHubStub,
    recording_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A server that echoes the credentials it was given must not get them into the output.
    stub.failure = (status, {"message": f"{message} for {TOKEN}"})

    code, out, err = run(project, tmp_path / "reports", capsys)

    assert code == 1  # schedules and Prefect notice
    assert "error: tracking issue not updated" in err
    assert f"GitHub answered {status} to GET /repos/acme/shop/issues" in err
    assert message in err
    assert hint in err
    assert TOKEN not in out + err
    assert stub.calls[0].authorization == f"Bearer {TOKEN}"
    report = Path(out.strip().splitlines()[-1])
    assert report.is_file()
    assert report.with_name("report.md").is_file()
    assert flow_runs(recording_database, "tech-debt")[-1]["result"] == "success"


def test_unreachable_github_is_reported_without_the_token(
    project: Path,
    tmp_path: Path,
    stub: GitHubStub,
    recording_database: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("GITHUB_API_URL", closed)

    code, out, err = run(project, tmp_path / "reports", capsys)

    assert code == 1
    assert f"GitHub at {closed} could not be reached (ConnectError)" in err
    assert TOKEN not in out + err
    assert Path(out.strip().splitlines()[-1]).is_file()


def test_in_aws_the_token_comes_from_the_stack_secret_and_the_link_from_the_bucket(
    project: Path,
    tmp_path: Path,
    stub: GitHubStub,
    moto_endpoint: str,
    recording_database: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's environment: no GITHUB_TOKEN, the tech-debt git token's secret, a bucket."""
    bucket = f"slipway-reports-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    secret = boto3.client("secretsmanager", endpoint_url=moto_endpoint).create_secret(
        Name=f"slipway-test-{uuid.uuid4().hex[:8]}/tech-debt-git-token", SecretString=TOKEN
    )
    monkeypatch.delenv("GITHUB_TOKEN")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("FLOWS_REPORTS_BUCKET", bucket)
    monkeypatch.setenv("TECH_DEBT_GIT_TOKEN_SECRET_ARN", secret["ARN"])

    code, out, err = run(project, tmp_path / "reports", capsys)

    assert code == 0, err
    created = stub.calls[-1]
    assert (created.method, created.authorization) == ("POST", f"Bearer {TOKEN}")
    stamp = Path(out.strip().splitlines()[-1]).parent.name
    link = f"{moto_endpoint}/{bucket}/reports/tech-debt/{stamp}/report.md"
    assert f"Report: {link}" in created.body["body"]
