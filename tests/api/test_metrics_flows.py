"""Ops flow outcomes recorded in `ops_flow_runs` reach /metrics as ops_* series."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.observability.flow_runs import new_flow_run, record_flow_run
from api.observability.models import KNOWN_FLOWS
from tests.api.metrics_helpers import families, samples, scrape, value
from tests.conftest import AppHarness, make_settings

NIGHT = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


async def test_known_flows_start_at_zero_runs_and_no_success(client: httpx.AsyncClient) -> None:
    text = await scrape(client)
    for flow in KNOWN_FLOWS:
        for result in ("success", "failure"):
            assert value(text, "ops_flow_runs_total", flow=flow, result=result) == 0.0
    assert samples(text, "ops_flow_last_success_timestamp_seconds") == []
    assert samples(text, "ops_vulnerabilities_open") == []
    assert samples(text, "ops_reconciliation_mismatches") == []


async def test_runs_are_counted_and_the_last_success_is_exported(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await record_flow_run(database_url, "backup", "success", NIGHT)
    await record_flow_run(database_url, "backup", "success", NIGHT + DAY)
    await record_flow_run(database_url, "backup", "failure", NIGHT + 2 * DAY)
    await record_flow_run(database_url, "tech-debt", "failure", NIGHT)

    text = await scrape(client)
    last_success = value(text, "ops_flow_last_success_timestamp_seconds", flow="backup")
    assert last_success == (NIGHT + DAY).timestamp()  # the later failure does not count
    assert value(text, "ops_flow_last_success_timestamp_seconds", flow="tech-debt") is None
    assert value(text, "ops_flow_runs_total", flow="backup", result="success") == 2.0
    assert value(text, "ops_flow_runs_total", flow="backup", result="failure") == 1.0
    assert value(text, "ops_flow_runs_total", flow="tech-debt", result="failure") == 1.0
    assert value(text, "ops_flow_runs_total", flow="tech-debt", result="success") == 0.0


async def test_an_open_session_records_too(client: httpx.AsyncClient, app: FastAPI) -> None:
    async with app.state.database.sessions() as session:
        await record_flow_run(session, "reconcile-payments", "success", NIGHT)
    text = await scrape(client)
    assert value(text, "ops_flow_last_success_timestamp_seconds", flow="reconcile-payments") == (
        NIGHT.timestamp()
    )


async def test_measurements_of_the_latest_success_become_gauges(
    client: httpx.AsyncClient, database_url: str
) -> None:
    await record_flow_run(
        database_url,
        "dependency-scan",
        "success",
        NIGHT - DAY,
        measurements={"vulnerabilities": {"critical": 4}},
    )
    await record_flow_run(
        database_url,
        "dependency-scan",
        "success",
        NIGHT,
        started_at=NIGHT - timedelta(minutes=3),
        measurements={"vulnerabilities": {"critical": 1, "high": 2, "unknown": 1}},
    )
    # A failed run measured nothing reliable: it changes no gauge.
    await record_flow_run(
        database_url,
        "dependency-scan",
        "failure",
        NIGHT + DAY,
        measurements={"vulnerabilities": {"critical": 9}},
    )
    await record_flow_run(
        database_url,
        "reconcile-payments",
        "success",
        NIGHT,
        measurements={"mismatches": {"status_differs": 3, "missing_locally": 0}},
    )

    text = await scrape(client)
    assert {s.labels["severity"]: s.value for s in samples(text, "ops_vulnerabilities_open")} == {
        "critical": 1.0,
        "high": 2.0,
        "medium": 0.0,  # a scan that found none of a severity says 0, not nothing
        "low": 0.0,
        "unknown": 1.0,
    }
    assert {s.labels["kind"]: s.value for s in samples(text, "ops_reconciliation_mismatches")} == {
        "status_differs": 3.0,
        "missing_locally": 0.0,
    }


async def test_an_unreadable_database_leaves_ops_series_out_but_answers(
    app_harness: AppHarness,
) -> None:
    app = await app_harness.start(make_settings("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    async with AppHarness.client(app) as client:
        text = await scrape(client)
    exported = families(text)
    assert exported["ops_flow_runs"] == "counter"
    assert exported["ops_flow_last_success_timestamp_seconds"] == "gauge"
    assert samples(text, "ops_flow_runs_total") == []
    assert samples(text, "ops_flow_last_success_timestamp_seconds") == []
    assert exported["http_requests"] == "counter"  # the process metrics are still there


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"flow": "backups"}, "unknown flow"),
        ({"result": "ok"}, "result must be one of"),
        ({"finished_at": datetime(2026, 11, 24, 2, 0)}, "timezone-aware"),
        ({"started_at": NIGHT + DAY}, "started_at must not be after"),
        ({"measurements": {"Vulnerabilities": {"high": 1}}}, "measurement name"),
        ({"measurements": {"mismatches": {'a"}': 1}}}, "category"),
        ({"measurements": {"mismatches": {"": 1}}}, "category"),
        ({"measurements": {"mismatches": {"kind": -1}}}, ">= 0"),
        ({"measurements": {"mismatches": {"kind": math.nan}}}, "finite"),
        ({"measurements": {"mismatches": {"kind": True}}}, "number"),
        ({"measurements": {"mismatches": {f"k{n}": 1 for n in range(33)}}}, "categories"),
    ],
)
def test_bad_records_are_refused(arguments: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"flow": "backup", "result": "success", "finished_at": NIGHT}
    values.update(arguments)
    flow, result, finished_at = values.pop("flow"), values.pop("result"), values.pop("finished_at")
    with pytest.raises(ValueError, match=message):
        new_flow_run(flow, result, finished_at, **values)
