"""Recording ops flow outcomes: what every flow calls once, when it has finished.

    await record_flow_run(database_url, "backup", "success", finished_at)
    await record_flow_run(
        session, "reconcile-payments", "success", finished_at,
        measurements={"mismatches": {"missing_locally": 0, "status_differs": 2}},
    )

`result` says whether the flow did its job, not what it found: a dependency scan that completes
and finds vulnerabilities is a "success" that records them (its CLI still exits 1); a backup
whose upload failed is a "failure". Measurements of the latest successful run become gauges
(api.observability.flow_metrics). Inputs are checked here because flow names and measurement
categories become label values: unbounded ones would grow the number of series without limit.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from api.db import create_engine
from api.observability.models import FLOW_RESULTS, KNOWN_FLOWS, FlowResult, OpsFlowRun

MEASUREMENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
CATEGORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
MAX_MEASUREMENTS = 16
MAX_CATEGORIES = 32

Measurements = Mapping[str, Mapping[str, float]]


def _checked_measurements(measurements: Measurements | None) -> dict[str, dict[str, float]]:
    if measurements is None:
        return {}
    if len(measurements) > MAX_MEASUREMENTS:
        raise ValueError(f"at most {MAX_MEASUREMENTS} measurements per run")
    checked: dict[str, dict[str, float]] = {}
    for name, counts in measurements.items():
        if not MEASUREMENT_NAME.fullmatch(name):
            raise ValueError(f"measurement name {name!r} must match {MEASUREMENT_NAME.pattern}")
        if len(counts) > MAX_CATEGORIES:
            raise ValueError(f"measurement {name!r} has more than {MAX_CATEGORIES} categories")
        checked[name] = {}
        for category, value in counts.items():
            if not CATEGORY_NAME.fullmatch(category):
                raise ValueError(f"category {category!r} must match {CATEGORY_NAME.pattern}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}.{category} must be a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}.{category} must be a finite number >= 0")
            checked[name][category] = value
    return checked


def new_flow_run(
    flow: str,
    result: FlowResult,
    finished_at: datetime,
    *,
    started_at: datetime | None = None,
    measurements: Measurements | None = None,
) -> OpsFlowRun:
    """A validated, not yet stored row; raises ValueError naming the first bad input."""
    if flow not in KNOWN_FLOWS:
        raise ValueError(f"unknown flow {flow!r}; known flows: {', '.join(KNOWN_FLOWS)}")
    if result not in FLOW_RESULTS:
        raise ValueError(f"result must be one of {', '.join(FLOW_RESULTS)}")
    for label, moment in (("finished_at", finished_at), ("started_at", started_at)):
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"{label} must be timezone-aware")
    if started_at is not None and started_at > finished_at:
        raise ValueError("started_at must not be after finished_at")
    return OpsFlowRun(
        flow=flow,
        result=result,
        started_at=started_at,
        finished_at=finished_at,
        measurements=_checked_measurements(measurements),
    )


async def record_flow_run(
    target: AsyncSession | str,
    flow: str,
    result: FlowResult,
    finished_at: datetime,
    *,
    started_at: datetime | None = None,
    measurements: Measurements | None = None,
) -> OpsFlowRun:
    """Store one finished run and commit. `target` is an open session or a database URL."""
    run = new_flow_run(flow, result, finished_at, started_at=started_at, measurements=measurements)
    if isinstance(target, AsyncSession):
        target.add(run)
        await target.commit()
        return run
    engine = create_engine(target)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            session.add(run)
            await session.commit()
    finally:
        await engine.dispose()
    return run


def record_flow_run_blocking(
    database_url: str,
    flow: str,
    result: FlowResult,
    finished_at: datetime,
    *,
    started_at: datetime | None = None,
    measurements: Measurements | None = None,
) -> OpsFlowRun:
    """`record_flow_run` for synchronous code (a flow not running inside an event loop)."""
    return asyncio.run(
        record_flow_run(
            database_url,
            flow,
            result,
            finished_at,
            started_at=started_at,
            measurements=measurements,
        )
    )
