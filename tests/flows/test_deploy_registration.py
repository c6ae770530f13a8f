"""`python -m flows deploy` against a real (local) Prefect server, run as the deploy pipeline
runs it: the registration task's command and environment, taken from the stack's container
definition, with PREFECT_API_URL pointing at the server (the pipeline's run-task override)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra_pulumi.components.flows_registration import registration_container

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = yaml.safe_load((ROOT / "prefect.yaml").read_text())
IMAGE_TAG = "0123abcd"
BACKUP_BUCKET = "slipway-test-backups"
LINE = re.compile(
    r"^(?P<name>[a-z-]+/[a-z]+): (?P<action>created|updated) id=(?P<id>[0-9a-f-]{36}) "
    r"schedule='(?P<schedule>[^']+)' pool=slipway-process version=(?P<version>\S+)$"
)


def container() -> dict[str, Any]:
    return registration_container(
        image=f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/slipway-flows:{IMAGE_TAG}",
        image_tag=IMAGE_TAG,
        log_group="/slipway/prefect-worker",
        region="eu-west-1",
        backup_bucket=BACKUP_BUCKET,
        kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/test",
    )


def run_registration(api_url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """The container's command in the repository (the image's working directory, /app), with
    the container's environment plus the pipeline's override."""
    definition = container()
    environment = {item["name"]: item["value"] for item in definition["environment"]}
    environment["SLIPWAY_HOME"] = str(ROOT)  # the image's /app
    command = [sys.executable if part == "python" else part for part in definition["command"]]
    # Bytecode may be cached (this environment disables it): the command imports Prefect.
    inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env = {**inherited, **environment, "PREFECT_API_URL": api_url}
    return subprocess.run(
        [*command, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_registration_creates_then_updates_the_four_scheduled_deployments(
    prefect_harness: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import CronSchedule

    from flows.deployments import register_deployments

    first = run_registration(prefect_harness)
    # Again, in this process this time (a second interpreter start costs half a minute here):
    # the lines `python -m flows deploy` prints. (No capsys: Prefect's log handler keeps the
    # stream it first saw, and a captured one is closed after the test.)
    monkeypatch.chdir(ROOT)
    for item in container()["environment"]:
        monkeypatch.setenv(item["name"], item["value"])
    monkeypatch.setenv("SLIPWAY_HOME", str(ROOT))
    second = "\n".join(register_deployments(ROOT / "prefect.yaml", IMAGE_TAG)) + "\n"

    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.splitlines()[0] == "work pool slipway-process: created (process)"
    assert second.splitlines()[0] == "work pool slipway-process: exists (process)"
    created = [LINE.match(line) for line in first.stdout.splitlines()[1:]]
    updated = [LINE.match(line) for line in second.splitlines()[1:]]
    assert all(created), first.stdout
    assert all(updated), second
    expected = {f"{d['flow_name']}/{d['name']}": d for d in PREFECT_YAML["deployments"]}
    assert {m["name"] for m in created if m} == set(expected)
    assert {m["action"] for m in created if m} == {"created"}
    assert {m["action"] for m in updated if m} == {"updated"}
    # The same deployments, not new ones.
    assert {m["name"]: m["id"] for m in created if m} == {m["name"]: m["id"] for m in updated if m}

    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("slipway-process")
        deployments = {
            f"{client.read_flow(d.flow_id).name}/{d.name}": d for d in client.read_deployments()
        }
    assert pool.type == "process"
    assert set(deployments) == set(expected)
    for name, spec in expected.items():
        deployment = deployments[name]
        # One schedule each, however often it is registered.
        (schedule,) = deployment.schedules
        assert isinstance(schedule.schedule, CronSchedule)
        assert schedule.schedule.cron == spec["schedules"][0]["cron"]
        assert deployment.work_pool_name == "slipway-process"
        assert deployment.work_queue_name == "ops"
        assert deployment.version == IMAGE_TAG
        assert deployment.entrypoint == spec["entrypoint"]
        assert deployment.job_variables == {"working_dir": str(ROOT)}
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ]
    assert deployments["backup/nightly"].parameters == {
        "bucket": BACKUP_BUCKET,
        "kms_key_id": "arn:aws:kms:eu-west-1:123456789012:key/test",
        "verify": True,
    }


def test_registration_fails_when_the_api_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = run_registration(f"http://127.0.0.1:{port}/api", "--wait", "1")

    assert result.returncode == 2
    assert "registration failed" in result.stderr
    assert f"127.0.0.1:{port}/api did not answer within 1 s" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("missing", ["SLIPWAY_HOME"])
def test_a_missing_setting_is_named(
    prefect_harness: str, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    from flows.deployments import RegistrationError, register_deployments

    monkeypatch.delenv(missing, raising=False)
    monkeypatch.chdir(ROOT)
    with pytest.raises(RegistrationError, match=f"needs \\${missing}, which is not set"):
        register_deployments(ROOT / "prefect.yaml", IMAGE_TAG, wait_seconds=5)
