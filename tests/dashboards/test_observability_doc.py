"""docs/observability.md describes every dashboard and every alert there is."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dashboards.generate import rendered

OBSERVABILITY = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
ALERTS = Path(__file__).resolve().parents[2] / "dashboards" / "alerts"


def _observability_section() -> str:
    return OBSERVABILITY.read_text(encoding="utf-8")


def test_every_dashboard_is_described() -> None:
    section = _observability_section()
    for text in rendered().values():
        assert f"(`{json.loads(text)['uid']}`)" in section


def test_every_alert_is_listed_with_its_severity() -> None:
    section = _observability_section()
    for path in sorted(ALERTS.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    row = f"| `{rule['alert']}` | {rule['labels']['severity']} |"
                    assert row in section, rule["alert"]
