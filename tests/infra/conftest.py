"""The three stacks (dev, staging, prod), built once per session under Pulumi mocks with
their real Pulumi.<stack>.yaml.

Each stack runs in its own subprocess (`python -m infra_pulumi.plan --json`): Pulumi's runtime
settings and mocks are process-global, so a fresh process per stack is the reliable way to
keep the two runs apart. Both run concurrently.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra_pulumi.plan import Plan, PlannedResource

ROOT = Path(__file__).resolve().parents[2]
STACKS = ("dev", "staging", "prod")


def run_offline(stack: str, *overrides: str, now: str | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "infra_pulumi.plan", "--stack", stack, "--json"]
    if now is not None:
        command += ["--now", now]
    for override in overrides:
        command += ["--set", override]
    # Importing pulumi_aws compiles megabytes of generated code: let the child cache bytecode
    # even where the environment disables it, so later runs start in a fraction of the time.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def collect(process: subprocess.Popen[str]) -> Plan:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-4000:]
    return Plan.from_json(stdout)


@pytest.fixture(scope="session")
def plans() -> dict[str, Plan]:
    processes = {stack: run_offline(stack) for stack in STACKS}
    return {stack: collect(process) for stack, process in processes.items()}


@pytest.fixture(scope="session")
def dev(plans: dict[str, Plan]) -> Plan:
    return plans["dev"]


@pytest.fixture(scope="session")
def staging(plans: dict[str, Plan]) -> Plan:
    return plans["staging"]


@pytest.fixture(scope="session")
def prod(plans: dict[str, Plan]) -> Plan:
    return plans["prod"]


def of_type(plan: Plan, type_: str) -> list[PlannedResource]:
    return [r for r in plan.resources if r.type == type_]


def one(plan: Plan, type_: str, name: str | None = None) -> PlannedResource:
    found = [r for r in of_type(plan, type_) if name is None or r.name == name]
    assert len(found) == 1, f"expected one {type_} {name or ''}, found {[r.name for r in found]}"
    return found[0]


@pytest.fixture(autouse=True)
def pulumi_event_loop() -> Iterator[None]:
    """Pulumi's Output needs a current event loop even in synchronous code.

    Earlier tests (Alembic migrations, `asyncio.run`) leave the main thread with none, so each
    infra test gets its own loop, and the previous state is restored afterwards.
    """
    policy = asyncio.get_event_loop_policy()
    try:
        previous: asyncio.AbstractEventLoop | None = policy.get_event_loop()
    except RuntimeError:
        previous = None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(previous)
        loop.close()
