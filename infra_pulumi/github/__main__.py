"""Entry point of the `slipway-github` Pulumi project (`cd infra_pulumi/github && pulumi up`)."""

from __future__ import annotations

import sys
from pathlib import Path

# Pulumi runs this directory as a script; the repository root makes `infra_pulumi` importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pulumi

from infra_pulumi.github.config import from_pulumi
from infra_pulumi.github.governance import GithubGovernance

governance = GithubGovernance("slipway", from_pulumi())
pulumi.export("repositories", governance.repository_names)
pulumi.export("environments", governance.environment_names)
pulumi.export("requiredChecks", governance.required_checks)
