"""The deploy workflow governance commits into the front-end repository (frontend-deploy.yml):
its publish step, run with a stand-in `aws` on PATH, uploads the bundler's hashed files for a
year before the entry points, and invalidates only the entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.delivery.fake_aws import option, run_script
from tests.delivery.workflows import FRONTEND_WORKFLOW, load_workflow

WORKFLOW = load_workflow(FRONTEND_WORKFLOW)
PUBLISH_JOBS = ("publish-staging", "publish-production")


def _publish_step(job: str) -> dict[str, Any]:
    (step,) = [s for s in WORKFLOW.jobs[job]["steps"] if "run" in s]
    return dict(step)


def _publish(
    tmp_path: Path, build: Path, replies: dict[str, str] | None = None
) -> tuple[Any, list[list[str]]]:
    """The staging job's publish step as GitHub would run it: workflow env, then step env."""
    script = tmp_path / "publish.sh"
    script.write_text(_publish_step("publish-staging")["run"], encoding="utf-8")
    env = {key: str(value) for key, value in WORKFLOW.data["env"].items()}
    env |= {"BUILD": str(build), "STATIC_BUCKET": "slipway-staging-static", "DISTRIBUTION_ID": "E1"}
    return run_script(script, tmp_path, replies or {"cloudfront create-invalidation": "I1"}, env)


def test_both_environments_publish_with_the_same_script() -> None:
    staging, production = (_publish_step(job) for job in PUBLISH_JOBS)
    assert staging["run"] == production["run"]
    assert staging["env"] == production["env"]
    for job in PUBLISH_JOBS:
        credentials = [
            s
            for s in WORKFLOW.jobs[job]["steps"]
            if "configure-aws-credentials" in s.get("uses", "")
        ]
        assert credentials[0]["with"]["role-to-assume"] == "${{ vars.AWS_STATIC_ROLE_ARN }}"


def test_hashed_files_go_first_for_a_year_and_only_entry_points_are_invalidated(
    tmp_path: Path,
) -> None:
    build = tmp_path / "dist"
    (build / "assets").mkdir(parents=True)
    (build / "assets" / "index-3f2a9c0d.js").write_text("x", encoding="utf-8")
    (build / "index.html").write_text("<!doctype html>", encoding="utf-8")
    (build / "robots.txt").write_text("", encoding="utf-8")

    result, calls = _publish(tmp_path, build)

    assert result.returncode == 0, result.stderr
    assets, rest, invalidation = calls
    assert assets[:4] == [
        "s3",
        "cp",
        f"{build}/assets",
        "s3://slipway-staging-static/static/web/assets",
    ]
    assert option(assets, "--cache-control") == "public, max-age=31536000, immutable"
    assert rest[:4] == ["s3", "cp", str(build), "s3://slipway-staging-static/static/web"]
    assert option(rest, "--exclude") == "assets/*"
    assert option(rest, "--cache-control") == "public, max-age=60"
    assert invalidation[:2] == ["cloudfront", "create-invalidation"]
    assert option(invalidation, "--distribution-id") == "E1"
    paths = invalidation[invalidation.index("--paths") + 1 : invalidation.index("--query")]
    assert paths == ["/static/web/index.html", "/static/web/robots.txt"]


@pytest.mark.parametrize("failing", ["s3 cp", "cloudfront create-invalidation"])
def test_a_failed_upload_or_invalidation_fails_the_job(tmp_path: Path, failing: str) -> None:
    build = tmp_path / "dist"
    build.mkdir()
    (build / "index.html").write_text("<!doctype html>", encoding="utf-8")
    result, _ = _publish(tmp_path, build, {failing: "FAIL"})
    assert result.returncode != 0
