"""tech-debt: where change and complexity meet (hotspots), plus dead code, markers, lint, and the
trend against this repository's previous report.

A complex file nobody touches costs little; a simple file changed every day costs little; a
complex file changed every week is where bugs and slow reviews come from. The hotspot score is
commits in the window x total cyclomatic complexity (the "change frequency x complexity" of
Tornhill's Your Code as a Crime Scene).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flows.report_store import previous_report_documents
from flows.reports import REPORT_JSON, FlowOutcome, new_report_dir, write_json
from flows.tech_debt.analysis import (
    Churn,
    Complexity,
    churn,
    complexity,
    dead_code,
    hotspot_candidate,
    is_generated_file,
    lint_counts,
    markers,
    tracked_files,
)
from flows.tech_debt.repository import working_tree

FLOW_NAME = "tech-debt"
TOP_HOTSPOTS = 20
MAX_LISTED = 200


@dataclass(frozen=True, slots=True)
class Hotspot:
    file: str
    score: int
    commits: int
    lines_changed: int
    complexity: int
    worst_function: str
    worst_complexity: int


def rank_hotspots(
    changes: dict[str, Churn], complexities: dict[str, Complexity], limit: int = TOP_HOTSPOTS
) -> list[Hotspot]:
    """Files in both maps with some complexity, highest commits x complexity first."""
    hotspots = [
        Hotspot(
            file=name,
            score=change.commits * complexities[name].total,
            commits=change.commits,
            lines_changed=change.lines_changed,
            complexity=complexities[name].total,
            worst_function=complexities[name].worst_block,
            worst_complexity=complexities[name].worst,
        )
        for name, change in changes.items()
        if name in complexities and complexities[name].total > 0
    ]
    hotspots.sort(key=lambda h: (-h.score, -h.lines_changed, h.file))
    return hotspots[:limit]


def analyse(
    repo: Path, since_days: int, include_tests: bool = False, label: str | None = None
) -> dict[str, Any]:
    """Every measurement, as the JSON report's body (without the trend). `label` names the
    repository in the report (a clone's URL rather than its temporary path)."""
    repo = repo.resolve()
    files = tracked_files(repo)
    complexities = complexity(repo, files)
    candidates = {
        name: measured
        for name, measured in complexities.items()
        if hotspot_candidate(repo, name, include_tests)
    }
    hotspots = rank_hotspots(churn(repo, since_days), candidates)
    # Generated code's dead code and markers are its generator's business.
    own = [name for name in files if not is_generated_file(repo, name)]
    unused = dead_code(repo, own)
    found_markers = markers(repo, own)
    lint = lint_counts(repo)
    return {
        "flow": FLOW_NAME,
        "repo": label or str(repo),
        "since_days": since_days,
        "tests_included": include_tests,
        "summary": {
            "files": len(files),
            "python_files": len(complexities),
            "total_complexity": sum(c.total for c in complexities.values()),
            "hotspot_score": sum(h.score for h in hotspots),
            "dead_code": len(unused),
            "markers": len(found_markers),
            "lint": sum(lint.values()),
        },
        "hotspots": [asdict(h) for h in hotspots],
        "dead_code": {
            "by_kind": dict(Counter(item.kind for item in unused)),
            "items": [asdict(item) for item in unused[:MAX_LISTED]],
        },
        "markers": {
            "by_kind": dict(Counter(item.kind for item in found_markers)),
            "items": [asdict(item) for item in found_markers[:MAX_LISTED]],
        },
        "lint": {"by_code": lint, "total": sum(lint.values())},
    }


def previous_report(reports_dir: Path, repo: str) -> dict[str, Any] | None:
    """The latest kept report (bucket or reports directory) for the same repository, if any."""
    for report in previous_report_documents(reports_dir, FLOW_NAME):
        if report.get("repo") == repo and "summary" in report:
            return report
    return None


def trend(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    """Change of each summary figure since the previous report (positive = more debt)."""
    if previous is None:
        return None
    before, now = previous["summary"], current["summary"]
    old_scores = {h["file"]: h["score"] for h in previous.get("hotspots", [])}
    return {
        "previous_generated_at": previous.get("generated_at"),
        "deltas": {key: now[key] - before.get(key, 0) for key in now},
        "new_hotspots": [h["file"] for h in current["hotspots"] if h["file"] not in old_scores],
        # Score change of each hotspot that was already one last time.
        "hotspot_deltas": {
            h["file"]: h["score"] - old_scores[h["file"]]
            for h in current["hotspots"]
            if h["file"] in old_scores
        },
    }


def _signed(value: int) -> str:
    return f"+{value}" if value > 0 else str(value)


def to_markdown(report: dict[str, Any]) -> str:
    summary = report["summary"]
    lines = [
        "# Tech debt",
        "",
        f"`{report['repo']}`, churn over {report['since_days']} days: "
        f"{summary['python_files']} Python files, total complexity {summary['total_complexity']}"
        f", {summary['dead_code']} dead-code findings, {summary['markers']} markers"
        f", {summary['lint']} lint violations.",
        "",
    ]
    if report.get("trend"):
        deltas = report["trend"]["deltas"]
        lines += ["## Trend since the previous report", ""]
        lines += [f"- {key}: {_signed(value)}" for key, value in deltas.items()]
        lines.append("")
    lines += ["## Hotspots (commits x complexity)", ""]
    if report["hotspots"]:
        lines += [
            "| # | file | score | commits | lines changed | complexity | worst function |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {rank} | `{h['file']}` | {h['score']} | {h['commits']} | {h['lines_changed']} "
            f"| {h['complexity']} | {h['worst_function']} ({h['worst_complexity']}) |"
            for rank, h in enumerate(report["hotspots"], start=1)
        ]
    else:
        lines.append("No Python file changed in the window.")
    lines += ["", "## Markers", ""]
    lines += [f"- {kind}: {count}" for kind, count in report["markers"]["by_kind"].items()] or [
        "none"
    ]
    lines += ["", "## Dead code (vulture)", ""]
    lines += [f"- {kind}: {count}" for kind, count in report["dead_code"]["by_kind"].items()] or [
        "none"
    ]
    lines += ["", "## Lint (ruff)", ""]
    lines += [f"- {code}: {count}" for code, count in report["lint"]["by_code"].items()] or [
        "clean"
    ]
    return "\n".join(lines) + "\n"


def write_tech_debt_report(report: dict[str, Any], reports_dir: Path) -> FlowOutcome:
    report = {**report, "trend": trend(report, previous_report(reports_dir, report["repo"]))}
    directory = new_report_dir(reports_dir, FLOW_NAME)
    report["generated_at"] = directory.name
    path = write_json(directory / REPORT_JSON, report)
    markdown = to_markdown(report)
    (directory / "report.md").write_text(markdown)
    summary = report["summary"]
    return FlowOutcome(
        flow=FLOW_NAME,
        succeeded=True,
        exit_code=0,
        report_path=path,
        summary=f"{len(report['hotspots'])} hotspots, {summary['dead_code']} dead code, "
        f"{summary['markers']} markers, {summary['lint']} lint violations",
        measurements={
            "tech_debt": {
                key: summary[key]
                for key in ("hotspot_score", "total_complexity", "dead_code", "markers", "lint")
            }
        },
        markdown=markdown,
        table=[
            {k: h[k] for k in ("file", "score", "commits", "complexity")}
            for h in report["hotspots"]
        ],
    )


def analyse_repository(repo: Path, since_days: int, include_tests: bool = False) -> dict[str, Any]:
    """`analyse` on `repo`, or on a fresh shallow clone where `repo` has no history."""
    with working_tree(repo, since_days) as tree:
        return analyse(tree.path, since_days, include_tests, tree.label)


def run_tech_debt(
    *, repo: Path, since_days: int = 90, include_tests: bool = False, reports_dir: Path
) -> FlowOutcome:
    return write_tech_debt_report(analyse_repository(repo, since_days, include_tests), reports_dir)
