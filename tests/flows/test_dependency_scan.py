"""dependency-scan: reading locks and requirements, OSV matching, ignores, report formats, CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from flows.dependency_scan.advisories import AdvisoryDatabase
from flows.dependency_scan.cvss import base_score, rating
from flows.dependency_scan.dependencies import (
    Dependency,
    DependencyFileError,
    read_requirements,
    read_uv_lock,
)
from flows.dependency_scan.formats import to_sarif
from flows.dependency_scan.ignores import IgnoreFileError, load_ignore_rules
from flows.dependency_scan.pipeline import read_dependencies, scan_dependencies
from flows.dependency_scan.scan import find_vulnerabilities

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ADVISORIES = FIXTURES / "advisories"
REQUIREMENTS = FIXTURES / "flows" / "requirements-vulnerable.txt"
SMALL_LOCK = FIXTURES / "flows" / "uv-small.lock"


def findings_for(name: str, version: str) -> list[str]:
    dependency = Dependency(name, version, "requirements.txt", 1)
    return [f.id for f in find_vulnerabilities([dependency], AdvisoryDatabase(ADVISORIES))]


def test_uv_lock_yields_registry_packages_with_their_lines() -> None:
    dependencies = read_uv_lock(SMALL_LOCK)

    assert [(d.name, d.version) for d in dependencies.pinned] == [
        ("jinja2", "2.10"),
        ("requests", "2.31.0"),  # canonical name, though the lock spells it "Requests"
        ("urllib3", "2.0.6"),
    ]
    lines = SMALL_LOCK.read_text().splitlines()
    for dependency in dependencies.pinned:
        assert dependency.name in lines[dependency.line - 1].lower()


def test_requirements_follow_includes_hashes_and_continuations() -> None:
    dependencies = read_requirements(REQUIREMENTS)

    assert {(d.name, d.version) for d in dependencies.pinned} == {
        ("requests", "2.25.0"),
        ("jinja2", "2.11.3"),
        ("urllib3", "1.26.16"),
        ("py", "1.11.0"),
        ("redis", "4.5.4"),
    }
    assert dependencies.unpinned == ["flask>=2"]


def test_malformed_inputs_are_refused_with_the_file_named(tmp_path: Path) -> None:
    bad_requirements = tmp_path / "requirements.txt"
    bad_requirements.write_text("requests==2.0\nnot a requirement !!\n")
    with pytest.raises(DependencyFileError, match=r"requirements.txt:2"):
        read_requirements(bad_requirements)
    bad_lock = tmp_path / "uv.lock"
    bad_lock.write_text("[[package]\n")
    with pytest.raises(DependencyFileError, match=r"not a valid uv\.lock"):
        read_uv_lock(bad_lock)
    with pytest.raises(ValueError, match="exactly one"):
        read_dependencies(bad_lock, bad_requirements)


def test_version_inside_an_ecosystem_range_is_a_finding() -> None:
    assert findings_for("requests", "2.25.0") == ["PYSEC-2023-74"]
    assert findings_for("requests", "2.3.0") == ["PYSEC-2023-74"]  # introduced is inclusive


def test_fixed_and_earlier_versions_are_not_flagged() -> None:
    assert findings_for("requests", "2.31.0") == []
    assert findings_for("requests", "2.2.1") == []  # before "introduced"
    assert findings_for("jinja2", "2.11.3") == []
    assert findings_for("jinja2", "2.11.2") == ["PYSEC-2021-66"]


def test_several_introduced_fixed_pairs_are_evaluated_in_version_order() -> None:
    # PYSEC-2023-212: introduced 0 / fixed 1.26.18 and introduced 2.0.0 / fixed 2.0.7.
    assert sorted(findings_for("urllib3", "1.26.16")) == ["PYSEC-2023-192", "PYSEC-2023-212"]
    assert findings_for("urllib3", "1.26.17") == ["PYSEC-2023-212"]
    assert findings_for("urllib3", "1.26.18") == []
    assert findings_for("urllib3", "2.0.6") == ["PYSEC-2023-212"]
    assert findings_for("urllib3", "2.0.7") == []


def test_last_affected_includes_that_version_only() -> None:
    assert findings_for("py", "1.11.0") == ["PYSEC-2022-42969"]
    assert findings_for("py", "1.11.1") == []


def test_withdrawn_advisories_are_never_reported() -> None:
    assert findings_for("redis", "4.5.4") == []


def test_findings_carry_aliases_severity_and_fixed_versions() -> None:
    dependency = Dependency("urllib3", "1.26.16", "requirements.txt", 3)
    findings = find_vulnerabilities([dependency], AdvisoryDatabase(ADVISORIES))

    high, medium = findings  # ordered by severity
    assert (high.id, high.severity.rating, high.severity.score) == ("PYSEC-2023-192", "high", 8.1)
    assert "CVE-2023-43804" in high.aliases
    assert high.fixed_versions == ("1.26.17", "2.0.6")
    assert (medium.severity.rating, medium.severity.score) == ("medium", 4.2)
    no_vector = find_vulnerabilities(
        [Dependency("requests", "2.25.0", "r.txt", 1)], AdvisoryDatabase(ADVISORIES)
    )
    assert no_vector[0].severity.rating == "unknown"


@pytest.mark.parametrize(
    ("vector", "score", "expected_rating"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, "critical"),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, "medium"),
        ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N", 0.0, "none"),
    ],
)
def test_cvss_base_scores_match_the_specification(
    vector: str, score: float, expected_rating: str
) -> None:
    assert base_score(vector) == score
    assert rating(score) == expected_rating


def test_cvss_rejects_what_is_not_a_v3_vector() -> None:
    assert base_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N") is None
    assert base_score("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") is None


def write_ignores(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "ignores.toml"
    path.write_text(body)
    return path


def test_ignore_file_hides_findings_by_id_or_alias_until_it_expires(tmp_path: Path) -> None:
    ignores = write_ignores(
        tmp_path,
        """
[[ignore]]
id = "CVE-2023-32681"
reason = "no proxies with credentials"

[[ignore]]
id = "PYSEC-2023-192"
reason = "cookies never set on redirects"
expires = 2026-01-01

[[ignore]]
id = "PYSEC-1999-1"
reason = "stale"
""",
    )
    dependencies = read_requirements(REQUIREMENTS)

    before = scan_dependencies(dependencies, ADVISORIES, ignores, today=date(2025, 12, 31))
    after = scan_dependencies(dependencies, ADVISORIES, ignores, today=date(2026, 1, 1))

    assert {f.id for f in before.ignored} == {"PYSEC-2023-74", "PYSEC-2023-192"}
    assert {f.id for f in before.active} == {"PYSEC-2023-212", "PYSEC-2022-42969"}
    assert [f.ignored_reason for f in before.ignored if f.package == "requests"] == [
        "no proxies with credentials"
    ]
    assert [rule.id for rule in before.unused_rules] == ["PYSEC-1999-1"]
    assert "PYSEC-2023-192" in {f.id for f in after.active}
    assert [rule.id for rule in after.expired_rules] == ["PYSEC-2023-192"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[ignore]]\nid = "PYSEC-1"\n', "needs a `reason`"),
        ('[[ignore]]\nreason = "x"\n', "needs an `id`"),
        ('[[ignore]]\nid = "A"\nreason = "x"\nexpires = "soon"\n', "must be a date"),
        ('[[ignore]]\nid = "A"\nreason = "x"\nexpiry = 2026-01-01\n', "unknown keys"),
        ("ignore = 3\n", "array of tables"),
    ],
)
def test_malformed_ignore_files_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(IgnoreFileError, match=message):
        load_ignore_rules(write_ignores(tmp_path, body))


def test_sarif_report_has_the_2_1_0_shape() -> None:
    result = scan_dependencies(read_requirements(REQUIREMENTS), ADVISORIES)
    sarif = json.loads(json.dumps(to_sarif(result)))  # must be plain JSON

    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].endswith("sarif-2.1.0.json")
    (run,) = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert run["tool"]["driver"]["name"]
    assert len({rule["id"] for rule in rules}) == len(rules)
    assert len(run["results"]) == len(result.active) == 4
    for sarif_result in run["results"]:
        assert rules[sarif_result["ruleIndex"]]["id"] == sarif_result["ruleId"]
        assert sarif_result["level"] in {"none", "note", "warning", "error"}
        assert sarif_result["message"]["text"]
        (location,) = sarif_result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"].endswith(".txt")
        assert physical["region"]["startLine"] >= 1
    for rule in rules:
        assert rule["shortDescription"]["text"]
        if "security-severity" in rule["properties"]:
            assert 0.0 <= float(rule["properties"]["security-severity"]) <= 10.0


def test_the_projects_own_lock_is_read_without_the_project_itself() -> None:
    lock = FIXTURES.parent.parent / "uv.lock"

    names = {d.name for d in read_uv_lock(lock).pinned}

    assert {"fastapi", "prefect", "packaging"} <= names
    assert "slipway" not in names  # the virtual root project is not on PyPI
