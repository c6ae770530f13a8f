"""The ops dashboard tells readers how often each flow runs; prefect.yaml's cron schedules are
the truth it must agree with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PANEL_TITLE = "Time since the last success, by flow"


def cadence(cron: str) -> str:
    """The cadence of the simple cron forms prefect.yaml uses (fixed minute, hour, weekday)."""
    _minute, hour, day, month, weekday = cron.split()
    assert (day, month) == ("*", "*"), f"unexpected schedule {cron!r}"
    if hour == "*":
        return "hourly"
    return "daily" if weekday == "*" else "weekly"


def test_cadence_reads_the_cron_forms() -> None:
    assert cadence("7 * * * *") == "hourly"
    assert cadence("15 3 * * *") == "daily"
    assert cadence("0 7 * * 1") == "weekly"


def test_the_flows_panel_states_each_flows_schedule_from_prefect_yaml() -> None:
    deployments: list[dict[str, Any]] = yaml.safe_load(
        (ROOT / "prefect.yaml").read_text(encoding="utf-8")
    )["deployments"]
    board = json.loads((ROOT / "dashboards/generated/ops.json").read_text(encoding="utf-8"))
    panels = [p for row in board["panels"] for p in [row, *row.get("panels", [])]]
    (panel,) = [p for p in panels if p.get("title") == PANEL_TITLE]
    clauses = {
        part.strip().removesuffix(" (prefect.yaml).").replace(" runs ", " ")
        for part in panel["description"].split(",")
    }
    expected = {f"{d['flow_name']} {cadence(d['schedules'][0]['cron'])}" for d in deployments}
    assert clauses == expected
