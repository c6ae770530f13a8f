"""Matching dependencies against advisories, and applying the ignore file."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from flows.dependency_scan.advisories import Advisory, AdvisoryDatabase, Severity
from flows.dependency_scan.dependencies import Dependency
from flows.dependency_scan.ignores import IgnoreRule

SEVERITY_ORDER = ("critical", "high", "medium", "low", "none", "unknown")


@dataclass(frozen=True, slots=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: Severity
    fixed_versions: tuple[str, ...]
    url: str | None
    source: str
    line: int
    ignored_reason: str | None = None
    ignore_expires: date | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    @property
    def ignored(self) -> bool:
        return self.ignored_reason is not None


@dataclass(frozen=True, slots=True)
class ScanResult:
    findings: list[Finding]
    scanned: int
    unpinned: list[str] = field(default_factory=list)
    # Ignore rules whose expiry has passed: they no longer hide anything, and say so.
    expired_rules: list[IgnoreRule] = field(default_factory=list)
    # Ignore rules matching no finding: candidates for deletion.
    unused_rules: list[IgnoreRule] = field(default_factory=list)

    @property
    def active(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.ignored]

    @property
    def ignored(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.ignored]


def _finding(dependency: Dependency, advisory: Advisory) -> Finding:
    return Finding(
        package=dependency.name,
        version=dependency.version,
        id=advisory.id,
        aliases=advisory.aliases,
        summary=advisory.summary,
        severity=advisory.severity,
        fixed_versions=tuple(advisory.fixed_versions(dependency.name)),
        url=advisory.url,
        source=dependency.source,
        line=dependency.line,
    )


def _severity_rank(finding: Finding) -> int:
    return SEVERITY_ORDER.index(finding.severity.rating)


def find_vulnerabilities(
    dependencies: list[Dependency], database: AdvisoryDatabase
) -> list[Finding]:
    findings = [
        _finding(dependency, advisory)
        for dependency in dependencies
        for advisory in database.advisories_for(dependency.name)
        if advisory.affects(dependency.name, dependency.version)
    ]
    return sorted(findings, key=lambda f: (_severity_rank(f), f.package, f.id))


def apply_ignores(
    findings: list[Finding], rules: list[IgnoreRule], today: date
) -> tuple[list[Finding], list[IgnoreRule], list[IgnoreRule]]:
    """Findings with matching active rules marked ignored; plus expired and unused rules."""
    active_rules = [rule for rule in rules if rule.active_on(today)]
    expired = [rule for rule in rules if not rule.active_on(today)]
    used: set[str] = set()
    marked: list[Finding] = []
    for finding in findings:
        rule = next((r for r in active_rules if r.id in finding.ids), None)
        if rule is None:
            marked.append(finding)
            continue
        used.add(rule.id)
        marked.append(replace(finding, ignored_reason=rule.reason, ignore_expires=rule.expires))
    unused = [rule for rule in active_rules if rule.id not in used]
    return marked, expired, unused
