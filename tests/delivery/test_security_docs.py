"""SECURITY.md, the security-finding issue form and the ASVS map say only true things: every
command they tell a tester or an operator to run exists with those options, every file they
name exists, and every test the ASVS map cites is still in the suite."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

from api.auth.__main__ import _parser as auth_cli
from scripts.seed_tester import _parser as seed_tester_cli

ROOT = Path(__file__).resolve().parents[2]
SECURITY_MD = ROOT / "SECURITY.md"
FINDING_FORM = ROOT / ".github" / "ISSUE_TEMPLATE" / "security-finding.yml"
ASVS_MAP = ROOT / "docs" / "security" / "asvs.md"

TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
REPOSITORY_PATH = re.compile(r"`((?:\.github|api|docs|scripts|tests|infra_pulumi)/[^`\s:]+)`")
ASVS_ROW = re.compile(r"^\| (\d+\.[\dx]+(?:\.[\dx]+)?[^|]*) \| ([^|]+) \| (.+) \|$")


@cache
def _defined_tests(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
    return frozenset(names)


def missing_tests(document: str) -> list[str]:
    missing = []
    for file, name in TEST_REFERENCE.findall(document):
        path = ROOT / file
        if not path.is_file() or name not in _defined_tests(path):
            missing.append(f"{file}::{name}")
    return missing


def test_every_test_the_asvs_map_cites_exists() -> None:
    document = ASVS_MAP.read_text()
    assert len(TEST_REFERENCE.findall(document)) >= 40
    assert missing_tests(document) == []


def test_a_vanished_test_is_reported() -> None:
    cited = "`tests/api/test_auth_flow.py::test_register_login_me_refresh_logout`"
    vanished = "`tests/api/test_auth_flow.py::test_that_was_renamed`"
    assert missing_tests(cited + vanished) == ["tests/api/test_auth_flow.py::test_that_was_renamed"]


def test_every_asvs_row_names_tests_or_a_reason() -> None:
    rows = [
        ASVS_ROW.match(line) for line in ASVS_MAP.read_text().splitlines() if ASVS_ROW.match(line)
    ]
    assert len(rows) >= 45
    for row in rows:
        assert row is not None
        evidence = row[3]
        assert (
            TEST_REFERENCE.search(evidence)
            or evidence.startswith("N/A: ")
            or evidence == 'see "Open"'
        ), row[0]
    for chapter in ("V2 ", "V3 ", "V4 ", "V5 ", "V7 ", "V13 "):
        assert f"## {chapter}" in ASVS_MAP.read_text()


@pytest.mark.parametrize("document", [SECURITY_MD, ASVS_MAP, ROOT / "docs" / "security.md"])
def test_files_named_in_the_security_documents_exist(document: Path) -> None:
    named = REPOSITORY_PATH.findall(document.read_text())
    assert named
    assert [path for path in named if not (ROOT / path.rstrip("/")).exists()] == []


def test_security_md_covers_reporting_versions_and_the_pentest_brief() -> None:
    text = SECURITY_MD.read_text()
    for heading in (
        "## Reporting a vulnerability",
        "## Supported versions",
        "## Penetration-test brief",
        "### Scope",
        "### Test accounts",
        "### Rules of engagement",
        "### How findings come back",
    ):
        assert heading in text
    assert "Report a vulnerability" in text  # GitHub's private reporting
    for out_of_scope in ("Stripe", "AWS"):
        assert out_of_scope in text.split("**Out of scope**")[1].split("###")[0]
    assert "WAF" in text
    assert "allow-list" in text


def test_the_commands_security_md_gives_exist() -> None:
    text = SECURITY_MD.read_text()
    assert "python -m api.auth create-admin --email" in text
    auth_cli().parse_args(["create-admin", "--email", "a@example.com", "--password-stdin"])
    assert "python -m api.auth disable-user --email" in text
    auth_cli().parse_args(["disable-user", "--email", "a@example.com"])
    assert "python -m scripts.seed_tester" in text
    seed_tester_cli().parse_args(
        ["--api-url", "https://x.example", "--email", "a@example.com", "--payments", "3"]
    )
    assert "make dast" in text
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^dast:", makefile, re.MULTILINE)


def test_the_finding_form_asks_what_a_fix_needs_and_is_private_by_default() -> None:
    form = yaml.safe_load(FINDING_FORM.read_text())
    fields = {item.get("id"): item for item in form["body"] if item["type"] != "markdown"}
    for required in ("severity", "affected-version", "reproduction", "impact"):
        assert fields[required]["validations"]["required"] is True, required
    severities = fields["severity"]["attributes"]["options"]
    assert any(option.startswith("Critical") for option in severities)
    notice = next(item for item in form["body"] if item["type"] == "markdown")
    assert "Private by default" in notice["attributes"]["value"]
    assert "private security advisory" in notice["attributes"]["value"]


def test_the_finding_form_is_a_valid_github_issue_form() -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "check_jsonschema",
            "--builtin-schema", "vendor.github-issue-forms", str(FINDING_FORM),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
