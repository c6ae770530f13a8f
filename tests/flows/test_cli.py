"""`python -m flows`: options, exit codes, the report path printed last, the ops_flow_runs row."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from flows.__main__ import main
from tests.flows.helpers import flow_runs

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
ADVISORIES = FIXTURES / "advisories"
REQUIREMENTS = FIXTURES / "flows" / "requirements-vulnerable.txt"


def test_python_m_flows_scan_exits_1_on_findings_and_prints_report_path_last(
    tmp_path: Path, recording_database: str
) -> None:
    before = len(flow_runs(recording_database, "dependency-scan"))
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows",
            "--reports-dir",
            str(tmp_path),
            "dependency-scan",
            "-r",
            str(REQUIREMENTS),
            "--advisory-db",
            str(ADVISORIES),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": recording_database},
        timeout=120,
        check=False,
    )

    assert completed.returncode == 1, completed.stderr
    report_path = Path(completed.stdout.strip().splitlines()[-1])
    assert report_path.parent.parent == tmp_path / "dependency-scan"
    report = json.loads(report_path.read_text())
    assert {f["id"] for f in report["findings"]} == {
        "PYSEC-2023-74",
        "PYSEC-2023-192",
        "PYSEC-2023-212",
        "PYSEC-2022-42969",
    }
    requests_finding = next(f for f in report["findings"] if f["package"] == "requests")
    assert requests_finding["fixed_versions"] == ["2.31.0"]
    assert "CVE-2023-32681" in requests_finding["aliases"]
    assert json.loads((report_path.parent / "report.sarif").read_text())["version"] == "2.1.0"
    assert "PYSEC-2023-74" in (report_path.parent / "report.md").read_text()
    runs = flow_runs(recording_database, "dependency-scan")
    assert len(runs) == before + 1
    # Completing the scan is a success for the ops metrics; the findings are measurements.
    assert runs[-1]["result"] == "success"
    assert runs[-1]["measurements"]["vulnerabilities"]["high"] == 1


def test_scan_exits_0_when_every_finding_is_ignored(
    tmp_path: Path, recording_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ignores = tmp_path / "ignores.toml"
    ignores.write_text(
        "".join(
            f'[[ignore]]\nid = "{advisory}"\nreason = "accepted for the test"\n'
            for advisory in (
                "PYSEC-2023-74",
                "PYSEC-2023-192",
                "PYSEC-2023-212",
                "PYSEC-2022-42969",
            )
        )
    )
    argv = ["--reports-dir", str(tmp_path / "reports"), "dependency-scan", "-r", str(REQUIREMENTS)]
    argv += ["--advisory-db", str(ADVISORIES), "--ignore", str(ignores)]

    assert main(argv) == 0

    report_path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    report = json.loads(report_path.read_text())
    assert report["findings"] == []
    assert len(report["ignored"]) == 4


def test_a_failing_run_exits_2_with_a_report_and_records_a_failure(
    tmp_path: Path, recording_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--reports-dir", str(tmp_path), "dependency-scan", "-r", str(tmp_path / "gone.txt")]
    argv += ["--advisory-db", str(ADVISORIES)]

    assert main(argv) == 2

    captured = capsys.readouterr()
    assert "gone.txt" in captured.err
    report = json.loads(Path(captured.out.strip().splitlines()[-1]).read_text())
    assert report["succeeded"] is False
    assert flow_runs(recording_database, "dependency-scan")[-1]["result"] == "failure"


@pytest.mark.parametrize(
    ("flow", "options"),
    [
        (
            "dependency-scan",
            ["--lock", "--requirements", "--advisory-db", "--advisory-db-url", "--ignore"],
        ),
        (
            "backup",
            [
                *("--database-url", "--bucket", "--prefix", "--kms-key-id"),
                *("--s3-endpoint-url", "--verify", "--no-verify"),
            ],
        ),
        ("reconcile-payments", ["--database-url", "--since", "--dry-run"]),
        ("tech-debt", ["--repo", "--since", "--include-tests"]),
        (
            "restore",
            [
                *("--bucket", "--prefix", "--at", "--target-database-url"),
                *("--s3-endpoint-url", "--force"),
            ],
        ),
        ("deploy", ["--prefect-yaml", "--version", "--wait"]),
    ],
)
def test_every_flow_offers_the_contract_options(
    flow: str, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([flow, "--help"])

    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in options:
        assert option in help_text


def test_scan_needs_exactly_one_dependency_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["dependency-scan", "--lock", "uv.lock", "-r", "requirements.txt"])

    assert exit_info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_running_a_flow_in_process_leaves_the_callers_event_loop_alone(
    tmp_path: Path, recording_database: str
) -> None:
    # In a thread of its own, so that this test's loop juggling touches no other test.
    seen: list[bool] = []

    def caller() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            argv = ["--reports-dir", str(tmp_path), "dependency-scan", "-r", str(REQUIREMENTS)]
            main([*argv, "--advisory-db", str(ADVISORIES)])
            seen.append(asyncio.get_event_loop() is loop)
        finally:
            loop.close()

    thread = threading.Thread(target=caller)
    thread.start()
    thread.join()

    assert seen == [True]
    assert flow_runs(recording_database, "dependency-scan")  # it did record, on its own loop
