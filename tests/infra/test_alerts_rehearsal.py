"""`make alerts-rehearse`: the real Prometheus and Alertmanager, the project's rules and the
generated alert manager configuration deliver a Chatbot-valid page and a runbook-naming e-mail
from a live API (about 30 s here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra_pulumi import alerting
from infra_pulumi.alerting import AlertManagerDefinition
from infra_pulumi.plan import Plan
from infra_pulumi.rehearsal import alert_config
from infra_pulumi.rehearsal.alerts import main
from infra_pulumi.rehearsal.containers import VENV_BIN
from tests.infra.conftest import one
from tests.services import TEST_DATABASE_URL, require_command, require_postgres, unavailable


@pytest.fixture(scope="module")
def alerting_programs() -> None:
    require_command("prometheus", "prometheus")
    require_command("prometheus-alertmanager", "prometheus-alertmanager")
    require_command("amtool", "prometheus-alertmanager")
    if not Path(VENV_BIN, "moto_server").exists():
        unavailable("moto_server is not installed (moto[server] in the dev group)")
    require_postgres()


def definition(plan: Plan) -> AlertManagerDefinition:
    resource = one(plan, "aws:amp/alertManagerDefinition:AlertManagerDefinition")
    return AlertManagerDefinition.parse(resource.props["definition"])


def test_a_page_reaches_slack_and_a_ticket_reaches_email(
    alerting_programs: None,
    staging: Plan,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan_file = tmp_path / "staging.json"
    plan_file.write_text(staging.to_json())
    exit_code = main(["--plan-file", str(plan_file), "--postgres-url", TEST_DATABASE_URL])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["ok"], summary
    assert exit_code == 0
    assert summary["amtool_check_config"] is True
    assert summary["page"]["problems"] == []
    assert summary["ticket"]["problems"] == []
    # The page came from a real outage: the API answered 503 while the database was gone.
    assert set(summary["page"]["api_statuses"]) == {"503"}
    assert summary["ticket"]["backup_exit_code"] != 0


def test_only_endpoints_and_timing_differ_from_the_deployed_configuration(
    staging: Plan, tmp_path: Path
) -> None:
    deployed = definition(staging)
    local = alert_config.local_alertmanager_config(deployed, tmp_path, "http://127.0.0.1:1")
    assert local["receivers"] == [
        {
            **receiver,
            "sns_configs": [
                {
                    **sns,
                    "api_url": "http://127.0.0.1:1",
                    "sigv4": {**sns["sigv4"], **alert_config.LOCAL_SIGV4},
                }
                for sns in receiver["sns_configs"]
            ],
        }
        for receiver in deployed.config["receivers"]
    ]
    timing = {"group_wait", "group_interval"}
    assert {k: v for k, v in local["route"].items() if k not in timing} == {
        k: v for k, v in deployed.config["route"].items() if k not in timing
    }


def test_rehearsal_rules_differ_only_in_their_for_durations() -> None:
    for rule_file in alerting.load_rule_files():
        production = yaml.safe_load(rule_file.text)
        rehearsal = yaml.safe_load(alert_config.quick_rules(rule_file))
        for group, quick_group in zip(production["groups"], rehearsal["groups"], strict=True):
            for rule, quick in zip(group["rules"], quick_group["rules"], strict=True):
                if "for" in rule:
                    assert quick.pop("for") == alert_config.FOR
                    rule.pop("for")
                assert quick == rule
