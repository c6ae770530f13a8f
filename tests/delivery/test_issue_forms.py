"""Issue forms under .github/ISSUE_TEMPLATE match GitHub's issue-form schema (checked offline by
check-jsonschema's bundled copy), and the refactoring form asks what a refactoring slot needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.delivery.workflows import GITHUB_DIR, ROOT

ISSUE_TEMPLATES = GITHUB_DIR / "ISSUE_TEMPLATE"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def _check_forms(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-issue-forms", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _forms() -> list[Path]:
    # config.yml configures the template chooser; it is not a form.
    return sorted(p for p in ISSUE_TEMPLATES.glob("*.y*ml") if p.stem != "config")


def test_every_issue_form_matches_the_schema() -> None:
    forms = _forms()
    assert ISSUE_TEMPLATES / "refactoring.yml" in forms
    result = _check_forms(*forms)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_form_without_a_body(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("name: Broken\ndescription: no body\n", encoding="utf-8")
    assert _check_forms(broken).returncode == 1


def test_the_refactoring_form_asks_for_hotspot_reason_change_verification_and_risk() -> None:
    form = yaml.safe_load((ISSUE_TEMPLATES / "refactoring.yml").read_text(encoding="utf-8"))
    required = {
        field["id"]
        for field in form["body"]
        if field.get("validations", {}).get("required") and "id" in field
    }
    assert {"hotspot", "why", "change", "verify", "risk"} <= required
    assert {"refactoring", "tech-debt"} <= set(form["labels"])
