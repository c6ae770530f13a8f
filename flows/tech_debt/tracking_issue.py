"""One GitHub issue, labelled `tech-debt`, that every tech-debt run rewrites with the top hotspots,
their trend and a link to the report: the list the team picks its refactoring slot from.

The run finds the issue by its label and a marker in the body (closed ones included, so a closed
tracking issue is reopened rather than duplicated), creates it when there is none, and otherwise
edits it in place. It needs GITHUB_REPOSITORY (owner/name) and a token with Issues: write:
GITHUB_TOKEN, else the tech-debt git token (TECH_DEBT_GIT_TOKEN or its Secrets Manager secret).
Without them the update is skipped and the run says so; the report never depends on GitHub.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx

from flows.report_store import browser_link
from flows.reports import REPORT_JSON, FlowOutcome
from flows.settings import flows_settings
from flows.tech_debt.analysis import RepositoryError
from flows.tech_debt.repository import git_token

LABEL = "tech-debt"
TITLE = "Tech debt: top hotspots"
MARKER = "<!-- slipway:tech-debt-tracking-issue -->"
LISTED_HOTSPOTS = 10
MAX_PAGES = 10  # 1,000 tech-debt labelled issues: beyond that something else is wrong
TIMEOUT_SECONDS = 30.0
_API_VERSION = "2022-11-28"


class TrackingIssueError(RuntimeError):
    """GitHub refused or could not be reached; the message never holds the token."""


def _trend_cell(file: str, trend: Mapping[str, Any] | None) -> str:
    if trend is None:
        return "first report"
    if file in trend.get("new_hotspots", []):
        return "new"
    delta = trend.get("hotspot_deltas", {}).get(file)
    if delta is None:
        return "n/a"  # a report from before per-hotspot trends were kept
    return f"{delta:+d}" if delta else "="


def issue_body(report: Mapping[str, Any], report_link: str) -> str:
    """Markdown: when and where from, the summary trend, the top hotspots with theirs."""
    trend = report.get("trend")
    lines = [
        MARKER,
        f"Updated by the weekly tech-debt run of {report.get('generated_at', '?')} on "
        f"`{report['repo']}` (churn over {report['since_days']} days). This issue is rewritten "
        "on every run: pick refactoring work from it (see CONTRIBUTING.md), don't comment here.",
        "",
        f"Report: {report_link}",
        "",
    ]
    if trend:
        deltas = ", ".join(f"{key} {value:+d}" for key, value in trend["deltas"].items())
        lines += [f"Since {trend['previous_generated_at']}: {deltas} (positive = more debt).", ""]
    hotspots = report["hotspots"][:LISTED_HOTSPOTS]
    if not hotspots:
        lines.append("No Python file changed in the window: no hotspot.")
        return "\n".join(lines) + "\n"
    lines += [
        "| # | file | score (commits x complexity) | trend | commits | worst function |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {rank} | `{h['file']}` | {h['score']} | {_trend_cell(h['file'], trend)} "
        f"| {h['commits']} | `{h['worst_function']}` ({h['worst_complexity']}) |"
        for rank, h in enumerate(hotspots, start=1)
    ]
    return "\n".join(lines) + "\n"


def _redact(text: str, token: str) -> str:
    return text.replace(token, "***")[:500]


def _check(response: httpx.Response, token: str) -> Any:
    if response.is_success:
        return response.json()
    try:
        detail = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        detail = response.text
    hint = {
        401: " (the token is invalid or expired)",
        403: " (the token lacks Issues: write on this repository, or a rate limit applies)",
        404: " (no such repository, or the token cannot see it)",
    }.get(response.status_code, "")
    raise TrackingIssueError(
        f"GitHub answered {response.status_code} to {response.request.method} "
        f"{response.request.url.path}{hint}: {_redact(detail, token) or 'no message'}"
    )


def _find_issue(client: httpx.Client, repository: str, token: str) -> int | None:
    """The lowest-numbered issue with the label and the marker, open or closed."""
    url: str | None = f"/repos/{repository}/issues"
    params: dict[str, str] | None = {"labels": LABEL, "state": "all", "per_page": "100"}
    found: list[int] = []
    for _ in range(MAX_PAGES):
        if url is None:
            break
        response = client.get(url, params=params)
        for issue in _check(response, token):
            if "pull_request" not in issue and MARKER in (issue.get("body") or ""):
                found.append(int(issue["number"]))
        url, params = response.links.get("next", {}).get("url"), None
    return min(found, default=None)


def sync_tracking_issue(
    report: Mapping[str, Any], report_link: str, *, repository: str, token: str, api_url: str
) -> str:
    """Create or rewrite the tracking issue; returns what was done, with the issue's URL."""
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": _API_VERSION,
        "User-Agent": "slipway-tech-debt",
    }
    body = issue_body(report, report_link)
    try:
        with httpx.Client(
            base_url=api_url.rstrip("/"), headers=headers, timeout=TIMEOUT_SECONDS
        ) as client:
            number = _find_issue(client, repository, token)
            if number is None:
                issue = _check(
                    client.post(
                        f"/repos/{repository}/issues",
                        json={"title": TITLE, "body": body, "labels": [LABEL]},
                    ),
                    token,
                )
                return f"tracking issue created: {issue.get('html_url', issue['number'])}"
            issue = _check(
                client.patch(
                    f"/repos/{repository}/issues/{number}",
                    json={"title": TITLE, "body": body, "state": "open"},
                ),
                token,
            )
            return f"tracking issue updated: {issue.get('html_url', number)}"
    except httpx.HTTPError as exc:
        # The type and the request only: some transport errors repeat headers.
        raise TrackingIssueError(
            f"GitHub at {api_url} could not be reached ({type(exc).__name__})"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise TrackingIssueError(
            f"GitHub at {api_url} answered something other than the issues API "
            f"({type(exc).__name__})"
        ) from exc


def publish_tracking_issue(outcome: FlowOutcome) -> FlowOutcome:
    """After the report is kept: update the issue, or say why not. A GitHub failure leaves the
    report and the run's success as they are but exits 1, so schedules and Prefect notice."""
    if not outcome.succeeded:
        return outcome
    settings = flows_settings()
    if not settings.github_repository:
        print("tracking issue not updated: GITHUB_REPOSITORY (owner/name) is not set")
        return outcome
    try:
        token = settings.github_token.get_secret_value() if settings.github_token else git_token()
    except RepositoryError as exc:
        return _failed(outcome, str(exc))
    if not token:
        print(
            "tracking issue not updated: no token (GITHUB_TOKEN, TECH_DEBT_GIT_TOKEN or the "
            "secret named by TECH_DEBT_GIT_TOKEN_SECRET_ARN) is set"
        )
        return outcome
    report = json.loads(outcome.report_path.read_text())
    # The Markdown report, kept next to the JSON one, is the one a person reads.
    markdown = outcome.report_path.with_name("report.md")
    link = (
        browser_link(outcome.report_url.removesuffix(REPORT_JSON) + markdown.name)
        if outcome.report_url
        else f"`{markdown}` (kept on the machine that ran it: no FLOWS_REPORTS_BUCKET)"
    )
    try:
        print(
            sync_tracking_issue(
                report,
                link,
                repository=settings.github_repository,
                token=token,
                api_url=settings.github_api_url,
            )
        )
    except TrackingIssueError as exc:
        return _failed(outcome, str(exc))
    return outcome


def _failed(outcome: FlowOutcome, reason: str) -> FlowOutcome:
    print(
        f"error: tracking issue not updated (the report is kept: {outcome.report_path}): {reason}",
        file=sys.stderr,
    )
    return replace(outcome, exit_code=1)
