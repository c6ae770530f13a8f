"""The Prometheus rules in dashboards/alerts: valid, unit-tested, routed, and built on series the
API really exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from api.observability.catalogue import exported_series
from dashboards.generate import rendered
from tests.dashboards.promql import problems
from tests.services import require_command

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "dashboards" / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.yml"))
UNIT_TEST_FILES = sorted((ALERTS / "tests").glob("*.yml"))
SEVERITIES = {"page", "ticket"}  # page -> Slack, ticket -> email (alert manager routing)


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(group["rules"])
    return rules


ALERT_RULES = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
RECORDING_RULES = {rule["record"]: rule for rule in _rules() if "record" in rule}


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_command("promtool", "prometheus")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_promtool_accepts_every_rule_file(promtool: str) -> None:
    assert RULE_FILES, "no rule files found"
    result = _run(promtool, "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass(promtool: str) -> None:
    result = _run(promtool, "test", "rules", *map(str, UNIT_TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails_the_unit_tests(promtool: str, tmp_path: Path) -> None:
    """The harness above can fail: an alert expected to fire on a quiet API is reported."""
    wrong = {
        "rule_files": [str(ALERTS / "api.yml")],
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": 'ratelimit_backend_errors_total{instance="a"}', "values": "0x30"}
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "20m",
                        "alertname": "RateLimitRedisFallbackActive",
                        "exp_alerts": [{"exp_labels": {"severity": "ticket"}}],
                    }
                ],
            }
        ],
    }
    test_file = tmp_path / "wrong_test.yml"
    test_file.write_text(yaml.safe_dump(wrong))
    result = _run(promtool, "test", "rules", str(test_file))
    assert result.returncode != 0
    assert "RateLimitRedisFallbackActive" in result.stdout + result.stderr


def _unit_test_expectations() -> dict[str, dict[str, int]]:
    """alert name -> how many checks expect it firing / not firing."""
    seen: dict[str, dict[str, int]] = {}
    for path in UNIT_TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for check in test.get("alert_rule_test", []):
                counts = seen.setdefault(check["alertname"], {"firing": 0, "quiet": 0})
                counts["firing" if check.get("exp_alerts") else "quiet"] += 1
    return seen


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    expectations = _unit_test_expectations()
    for name in ALERT_RULES:
        counts = expectations.get(name, {"firing": 0, "quiet": 0})
        assert counts["firing"] > 0, f"{name}: no unit test expects it to fire"
        assert counts["quiet"] > 0, f"{name}: no unit test expects it to stay quiet"
    assert set(expectations) <= set(ALERT_RULES), "unit tests name alerts that do not exist"


def test_the_required_alerts_exist() -> None:
    assert {
        "ApiAvailabilityBudgetBurnFast",
        "ApiAvailabilityBudgetBurnSlow",
        "ApiLatencyBudgetBurnFast",
        "ApiLatencyBudgetBurnSlow",
        "RateLimitHitsSurging",
        "RateLimitRedisFallbackActive",
        "StripeWebhookDeliveriesFailing",
        "StripeWebhookInvalidSignatures",
        "BackupTooOld",
        "PaymentReconciliationMismatches",
        "CriticalVulnerabilitiesOpen",
    } <= set(ALERT_RULES)


@pytest.mark.parametrize("name", sorted(ALERT_RULES))
def test_alert_is_routable_and_says_where_to_look(name: str) -> None:
    rule = ALERT_RULES[name]
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    dashboard_paths = {f"/d/{json.loads(text)['uid']}" for text in rendered().values()}
    assert annotations["dashboard"] in dashboard_paths
    # Notifications link the runbook at https://github.com/<repository>/blob/main/<runbook>.
    path, _, anchor = annotations["runbook"].partition("#")
    assert anchor in _heading_anchors(ROOT / path), f"{path} has no section #{anchor}"


def _heading_anchors(markdown: Path) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (lowercase, punctuation dropped)."""
    headings = re.findall(r"^#+ (.+)$", markdown.read_text(encoding="utf-8"), re.MULTILINE)
    return {
        re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-") for heading in headings
    }


@pytest.mark.parametrize(
    ("sli", "record"),
    [("Availability", "slo:http_request_errors:ratio"), ("Latency", "slo:http_request_slow:ratio")],
)
def test_slo_alerts_use_the_standard_burn_rates_and_windows(sli: str, record: str) -> None:
    """14.4x over 1h and 5m, 6x over 6h and 30m page; 3x over 1d and 2h, 1x over 3d and 6h
    open a ticket; against a 99.9 % objective (an error budget of 0.001)."""
    pairs = {
        f"Api{sli}BudgetBurnFast": [("14.4", "1h", "5m"), ("6", "6h", "30m")],
        f"Api{sli}BudgetBurnSlow": [("3", "1d", "2h"), ("1", "3d", "6h")],
    }
    for alert, windows in pairs.items():
        expr = " ".join(ALERT_RULES[alert]["expr"].split())
        for factor, long_window, short_window in windows:
            for window in (long_window, short_window):
                assert f"{record}_rate{window} > ({factor} * 0.001)" in expr, (alert, window)
    assert ALERT_RULES[f"Api{sli}BudgetBurnFast"]["labels"]["severity"] == "page"
    assert ALERT_RULES[f"Api{sli}BudgetBurnSlow"]["labels"]["severity"] == "ticket"


def _rule_catalogue() -> dict[str, frozenset[str]]:
    # Recorded SLO ratios are sums without grouping: they carry no labels.
    return exported_series() | {name: frozenset() for name in RECORDING_RULES}


@pytest.mark.parametrize("rule", [*ALERT_RULES, *RECORDING_RULES])
def test_rule_selects_only_exported_series_and_labels(rule: str) -> None:
    expr = (ALERT_RULES.get(rule) or RECORDING_RULES[rule])["expr"]
    assert problems(expr, _rule_catalogue()) == []
