"""Keeping reports: a copy in S3 under `reports/<flow>/<UTC timestamp>/` when
FLOWS_REPORTS_BUCKET is set, and the previous report read back for the trend.

A flow's container starts with an empty disk every run, so the bucket is where history lives;
without a bucket (local runs) the reports directory plays that part.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flows.reports import REPORT_JSON, FlowOutcome, previous_reports, write_json
from flows.s3 import StorageError, child_prefixes, get_bytes, put_bytes, s3_client
from flows.settings import flows_settings

REPORTS_PREFIX = "reports"
MAX_REPORT_BYTES = 20 * 1024 * 1024
_CONTENT_TYPES = {
    ".json": "application/json",
    ".sarif": "application/sarif+json",
    ".md": "text/markdown; charset=utf-8",
}


def reports_bucket() -> str | None:
    return flows_settings().reports_bucket or None


def report_key(flow: str, stamp: str, name: str) -> str:
    return f"{REPORTS_PREFIX}/{flow}/{stamp}/{name}"


def upload_report(directory: Path, flow: str, bucket: str) -> str:
    """Every file of one run's report directory; returns the JSON report's s3:// URI."""
    client = s3_client()
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        put_bytes(
            client,
            bucket,
            report_key(flow, directory.name, path.name),
            path.read_bytes(),
            None,  # the bucket's default encryption (the stack's KMS key)
            content_type=_CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
        )
    return f"s3://{bucket}/{report_key(flow, directory.name, REPORT_JSON)}"


def browser_link(s3_url: str) -> str:
    """Where a person can open a kept report: the S3 console, or the local S3's own URL when
    boto3's endpoint variables point elsewhere."""
    bucket, _, key = s3_url.removeprefix("s3://").partition("/")
    settings = flows_settings()
    endpoint = settings.aws_endpoint_url_s3 or settings.aws_endpoint_url
    if endpoint:
        return f"{endpoint.rstrip('/')}/{bucket}/{quote(key)}"
    return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={quote(key)}"


def previous_report_documents(
    reports_dir: Path, flow: str, before: str | None = None
) -> Iterator[dict[str, Any]]:
    """Earlier JSON reports of `flow`, newest first: from the bucket when one is configured,
    else from the reports directory. `before` (a run's timestamp) skips that run and later ones.
    """
    bucket = reports_bucket()
    if bucket:
        client = s3_client()
        for prefix in reversed(child_prefixes(client, bucket, f"{REPORTS_PREFIX}/{flow}/")):
            stamp = prefix.rstrip("/").rsplit("/", 1)[-1]
            if before is not None and stamp >= before:
                continue
            document = _parse(get_bytes(client, bucket, prefix + REPORT_JSON, MAX_REPORT_BYTES))
            if document is not None:
                yield document
        return
    for path in previous_reports(reports_dir, flow):
        if before is not None and path.parent.name >= before:
            continue
        document = _parse(path.read_bytes())
        if document is not None:
            yield document


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(data)
    except ValueError:
        return None  # a damaged report is no baseline; the one before it may be
    return document if isinstance(document, dict) else None


def measurement_trend(
    measurements: Mapping[str, Mapping[str, float]], previous: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Each measurement's change since the previous report (positive = went up)."""
    if previous is None:
        return None
    before = previous.get("measurements") or {}
    return {
        "previous_generated_at": previous.get("generated_at"),
        "deltas": {
            group: {
                name: value - float((before.get(group) or {}).get(name, 0))
                for name, value in values.items()
            }
            for group, values in measurements.items()
        },
    }


def _trend_markdown(trend: Mapping[str, Any]) -> str:
    lines = ["", f"## Trend since {trend['previous_generated_at']}", ""]
    for group, deltas in trend["deltas"].items():
        lines += [f"- {group}.{name}: {delta:+g}" for name, delta in deltas.items()]
    return "\n".join(lines) + "\n"


def keep_report(outcome: FlowOutcome) -> FlowOutcome:
    """Complete the run's JSON report (time, measurements, trend unless the flow computed its
    own) and copy the run's report files to the bucket; returns the outcome with its URL."""
    bucket = reports_bucket()
    try:
        return _keep(outcome, bucket)
    except StorageError as exc:
        raise StorageError(
            f"report not kept in bucket {bucket} (FLOWS_REPORTS_BUCKET): {exc}"
        ) from exc


def _keep(outcome: FlowOutcome, bucket: str | None) -> FlowOutcome:
    path = outcome.report_path
    document = _parse(path.read_bytes()) or {}
    stamp = path.parent.name
    document.setdefault("generated_at", stamp)
    document.setdefault("measurements", outcome.measurements)
    markdown = outcome.markdown
    if "trend" not in document:
        reports_dir = path.parent.parent.parent  # <reports dir>/<flow>/<stamp>/report.json
        previous = next(previous_report_documents(reports_dir, outcome.flow, stamp), None)
        document["trend"] = measurement_trend(outcome.measurements, previous)
        if document["trend"] is not None and outcome.measurements:
            markdown += _trend_markdown(document["trend"])
            markdown_path = path.parent / "report.md"
            if markdown_path.is_file():
                markdown_path.write_text(markdown)
    write_json(path, document)
    if not bucket:
        return replace(outcome, markdown=markdown)
    url = upload_report(path.parent, outcome.flow, bucket)
    return replace(outcome, markdown=markdown, report_url=url)
