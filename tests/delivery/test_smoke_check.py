"""The deploy jobs fail when the released API does not serve: `.github/scripts/smoke-check.sh`
run for real against a live app (uvicorn, migrated SQLite) and against nothing at all."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GENEROUS_RATE_LIMITS_FILE, TEST_JWT_PRIVATE_KEY
from tests.delivery.workflows import GITHUB_DIR, WORKFLOWS_DIR, load_workflow
from tests.live_server import LiveServer, free_port, serve_api

SCRIPT = GITHUB_DIR / "scripts" / "smoke-check.sh"
EMAIL = "smoke-test@example.com"
PASSWORD = "smoke-test-password-0123"


@pytest.fixture(scope="module")
def live_api(sqlite_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    environment = {
        "APP_ENV": "test",
        "DATABASE_URL": sqlite_url,
        "JWT_PRIVATE_KEYS": TEST_JWT_PRIVATE_KEY,
        "RATE_LIMITS_FILE": str(GENEROUS_RATE_LIMITS_FILE),
    }
    log = tmp_path_factory.mktemp("smoke-check") / "uvicorn.log"
    with serve_api(environment, log) as server:
        registered = httpx.post(
            f"{server.url}/v1/auth/register", json={"email": EMAIL, "password": PASSWORD}
        )
        assert registered.status_code in (201, 409), registered.text
        yield server


def smoke_check(api_url: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "API_URL": api_url,
        "SMOKE_TEST_EMAIL": EMAIL,
        "SMOKE_TEST_PASSWORD": PASSWORD,
        "READY_ATTEMPTS": "2",
        "READY_DELAY": "0",
        **overrides,
    }
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=90
    )


def test_a_serving_release_passes(live_api: LiveServer) -> None:
    result = smoke_check(live_api.url + "/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "readyz: 200" in result.stdout
    assert "GET /v1/users/me): 200" in result.stdout


def test_a_release_that_does_not_answer_fails_the_job(tmp_path: Path) -> None:
    result = smoke_check(f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "::error::" in result.stdout
    assert "readyz answered" in result.stdout


def test_a_release_that_cannot_sign_in_fails_the_job(live_api: LiveServer) -> None:
    wrong = "not-the-password-0123456"
    result = smoke_check(live_api.url, SMOKE_TEST_PASSWORD=wrong)
    assert result.returncode == 1
    assert "login as the smoke-test user answered 401" in result.stdout
    assert wrong not in result.stdout + result.stderr


def test_missing_inputs_stop_the_check(live_api: LiveServer) -> None:
    result = smoke_check(live_api.url, SMOKE_TEST_PASSWORD="")
    assert result.returncode != 0
    assert "readyz" not in result.stdout


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


@pytest.mark.parametrize("job_id", ["deploy-staging", "deploy-prod"])
def test_every_deploy_ends_with_the_smoke_check_of_what_it_deployed(job_id: str) -> None:
    steps = _steps(load_workflow(WORKFLOWS_DIR / "deploy.yml").jobs[job_id])
    runs = [str(step.get("run", "")) for step in steps]
    smoke = runs.index(".github/scripts/smoke-check.sh")
    ups = [i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("pulumi/actions@")]
    full = ups[-1]
    assert full < smoke
    env = steps[smoke]["env"]
    assert env["API_URL"] == f"${{{{ steps.{steps[full]['id']}.outputs.apiUrl }}}}"
    assert env["SMOKE_TEST_EMAIL"] == "${{ vars.SMOKE_TEST_EMAIL }}"
    assert env["SMOKE_TEST_PASSWORD"] == "${{ secrets.SMOKE_TEST_PASSWORD }}"
    assert "continue-on-error" not in steps[smoke]
