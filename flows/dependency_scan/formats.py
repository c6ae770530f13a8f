"""The scan report as JSON, SARIF 2.1.0 (for code-scanning UIs) and Markdown (for people)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from flows.dependency_scan.scan import SEVERITY_ORDER, Finding, ScanResult

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
TOOL_NAME = "slipway-dependency-scan"
TOOL_URI = "https://github.com/pypa/advisory-database"
# SARIF levels; GitHub code scanning additionally reads properties.security-severity.
_LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
# Representative scores for ratings that came without a vector.
_RATING_SCORES = {"critical": 9.5, "high": 8.0, "medium": 5.5, "low": 2.0, "none": 0.0}


def severity_counts(findings: list[Finding]) -> dict[str, int]:
    counts = Counter(finding.severity.rating for finding in findings)
    return {rating: counts[rating] for rating in SEVERITY_ORDER if counts[rating]}


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "package": finding.package,
        "version": finding.version,
        "id": finding.id,
        "aliases": list(finding.aliases),
        "summary": finding.summary,
        "severity": finding.severity.rating,
        "cvss_score": finding.severity.score,
        "cvss_vector": finding.severity.vector,
        "fixed_versions": list(finding.fixed_versions),
        "url": finding.url,
        "source": finding.source,
        "line": finding.line,
        "ignored": finding.ignored,
        "ignore_reason": finding.ignored_reason,
        "ignore_expires": finding.ignore_expires.isoformat() if finding.ignore_expires else None,
    }


def to_json(result: ScanResult, inputs: dict[str, str | None]) -> dict[str, Any]:
    return {
        "flow": "dependency-scan",
        "inputs": inputs,
        "summary": {
            "packages_scanned": result.scanned,
            "findings": len(result.active),
            "ignored": len(result.ignored),
            "by_severity": severity_counts(result.active),
        },
        "findings": [_finding_json(finding) for finding in result.active],
        "ignored": [_finding_json(finding) for finding in result.ignored],
        "unpinned_requirements": result.unpinned,
        "expired_ignores": [
            {"id": rule.id, "reason": rule.reason, "expired": str(rule.expires)}
            for rule in result.expired_rules
        ],
        "unused_ignores": [rule.id for rule in result.unused_rules],
    }


def _fix_text(finding: Finding) -> str:
    if not finding.fixed_versions:
        return "no fixed version is known"
    return "fixed in " + ", ".join(finding.fixed_versions)


def to_sarif(result: ScanResult) -> dict[str, Any]:
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for finding in result.active:
        rating = finding.severity.rating
        score = finding.severity.score
        if score is None:
            score = _RATING_SCORES.get(rating)
        properties: dict[str, Any] = {"tags": ["security", "dependency", *finding.aliases]}
        if score is not None:
            properties["security-severity"] = f"{score:.1f}"
        rules.setdefault(
            finding.id,
            {
                "id": finding.id,
                "name": finding.id.replace("-", ""),
                "shortDescription": {"text": f"{finding.id} in {finding.package}"},
                "fullDescription": {"text": finding.summary or finding.id},
                "help": {
                    "text": f"{finding.summary}\n\nUpgrade {finding.package}: {_fix_text(finding)}."
                },
                **({"helpUri": finding.url} if finding.url else {}),
                "properties": properties,
            },
        )
        results.append(
            {
                "ruleId": finding.id,
                "ruleIndex": list(rules).index(finding.id),
                "level": _LEVELS.get(rating, "warning"),
                "message": {
                    "text": f"{finding.package} {finding.version} is affected by {finding.id} "
                    f"({rating}); {_fix_text(finding)}."
                },
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": finding.source},
                            "region": {"startLine": max(finding.line, 1)},
                        }
                    }
                ],
                "partialFingerprints": {
                    "packageAdvisory": f"{finding.package}/{finding.version}/{finding.id}"
                },
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "informationUri": TOOL_URI,
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(result: ScanResult) -> str:
    lines = [
        "# Dependency scan",
        "",
        f"{result.scanned} packages scanned: **{len(result.active)} findings**"
        f", {len(result.ignored)} ignored.",
        "",
    ]
    if result.active:
        lines += [
            "| severity | package | version | advisory | aliases | fixed in |",
            "|---|---|---|---|---|---|",
        ]
        for finding in result.active:
            advisory = f"[{finding.id}]({finding.url})" if finding.url else finding.id
            lines.append(
                f"| {finding.severity.rating} | {finding.package} | {finding.version} "
                f"| {advisory} | {', '.join(finding.aliases)} "
                f"| {', '.join(finding.fixed_versions) or '—'} |"
            )
        lines.append("")
    if result.ignored:
        lines += [
            "## Ignored",
            "",
            "| advisory | package | reason | expires |",
            "|---|---|---|---|",
        ]
        for finding in result.ignored:
            expires = str(finding.ignore_expires) if finding.ignore_expires else "never"
            lines.append(
                f"| {finding.id} | {finding.package} {finding.version} "
                f"| {_cell(finding.ignored_reason or '')} | {expires} |"
            )
        lines.append("")
    if result.expired_rules:
        lines += ["## Expired ignores (no longer applied)", ""]
        lines += [f"- {rule.id} (expired {rule.expires})" for rule in result.expired_rules]
        lines.append("")
    if result.unpinned:
        lines += ["## Not scanned (no exact pin)", ""]
        lines += [f"- `{requirement}`" for requirement in result.unpinned]
        lines.append("")
    return "\n".join(lines)
