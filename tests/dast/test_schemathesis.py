"""DAST, part one: schemathesis against the live OpenAPI document (issue 12).

Every operation, authenticated as a registered user (admin operations as an admin), every
phase schemathesis has (examples, coverage, fuzzing, stateful) and every check, conformance
included: no 5xx, every status code and content type documented, responses matching their
schemas, schema-valid requests accepted, invalid ones refused; plus no leaked internals
(tests/dast/hooks.py). The run is bounded (max examples per operation, a fixed seed) so it fits
CI; DAST_MAX_EXAMPLES and DAST_SEED widen it for the weekly run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx

from api.ratelimit.policies import DEFAULT_POLICY_FILE
from tests.conftest import ROOT
from tests.dast.conftest import DAST_RATE_LIMITS_FILE, DastTarget

CONFIG = Path(__file__).with_name("schemathesis.toml")
RUN_TIMEOUT_SECONDS = 600
MAX_EXAMPLES = os.environ.get("DAST_MAX_EXAMPLES", "20")
SEED = os.environ.get("DAST_SEED", "11")


def _operation_count(base_url: str) -> int:
    document = httpx.get(f"{base_url}/openapi.json", timeout=30).json()
    return sum(
        1
        for path_item in document["paths"].values()
        for method in path_item
        if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    )


def test_schemathesis_finds_nothing(dast_target: DastTarget, tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(CONFIG), "--no-color",
        "run", f"{dast_target.base_url}/openapi.json",
        "--checks", "all",
        "--max-examples", MAX_EXAMPLES, "--seed", SEED,
        # One worker: the machine is small, and the target is shared with the attack suite.
        "--workers", "1",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    environment = {
        **os.environ,
        "DAST_USER_TOKEN": dast_target.user.access_token,
        "DAST_ADMIN_TOKEN": dast_target.admin.access_token,
        "SCHEMATHESIS_HOOKS": "tests.dast.hooks",
        "PYTHONPATH": str(ROOT),
    }
    result = subprocess.run(
        command,
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts is not None, report
    assert int(counts[1]) == int(counts[2]) > 0, report
    operations = _operation_count(dast_target.base_url)
    assert f"Tested: {operations}" in report, report
    if dast_target.server is not None:
        log = dast_target.server.log()
        assert "Traceback" not in log, log[-5000:]


def test_the_dast_run_raises_every_bundled_quota() -> None:
    """A policy added later would otherwise answer schemathesis with 429s and hide its routes."""
    bundled = tomllib.loads(DEFAULT_POLICY_FILE.read_text())["policies"]
    raised = tomllib.loads(DAST_RATE_LIMITS_FILE.read_text())["policies"]
    assert set(raised) == set(bundled)
