"""The alert manager's messages, rendered by the real alert manager template engine (`amtool
template render`, Debian's prometheus-alertmanager) from the definition the program deploys:
pages are AWS Chatbot custom notifications whatever the annotations hold, tickets are e-mails
naming the alert and its runbook, and the configuration passes `amtool check-config`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra_pulumi import alert_messages, alerting
from infra_pulumi.alert_messages import AlertLinks
from infra_pulumi.rehearsal.notifications import chatbot_problems
from tests.services import require_command

LINKS = AlertLinks.for_stack(
    "slipway-prod", "acme/slipway", "https://g-abc.grafana-workspace.eu-west-1.amazonaws.com/"
)
RUNBOOK_URL = "https://github.com/acme/slipway/blob/main/docs/alerts.md#backuptooold"
# What an annotation can hold once Prometheus has expanded its template with label values.
HOSTILE = 'He said "stop" \\ C:\\path\n\tnext line\r\x01 {{ .Status }} $1 ${1} </b> ünï 🚨'


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_command("amtool", "prometheus-alertmanager")


def alert(alertname: str, status: str = "firing", **annotations: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": alertname, "severity": "page", "flow": 'back"up'},
        "annotations": {
            "summary": "Summary",
            "description": "Description",
            "runbook": "docs/alerts.md#backuptooold",
            "dashboard": "/d/slipway-ops",
            **annotations,
        },
        "startsAt": "2026-11-30T09:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "0123456789abcdef",
    }


def group(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    labels = {"alertname": alerts[0]["labels"]["alertname"], "severity": "page"}
    return {
        "receiver": "slack-pages",
        "status": status,
        "alerts": list(alerts),
        "groupLabels": labels,
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
    }


def render(amtool: str, tmp_path: Path, template: str, data: dict[str, Any]) -> str:
    templates = tmp_path / "slipway.tmpl"
    templates.write_text(alert_messages.template_text(LINKS))
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    result = subprocess.run(
        [
            amtool,
            "template",
            "render",
            f"--template.glob={templates}",
            f"--template.data={data_file}",
            f"--template.text={alert_messages.use(template)}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def chatbot(amtool: str, tmp_path: Path, data: dict[str, Any]) -> dict[str, Any]:
    text = render(amtool, tmp_path, alert_messages.CHATBOT_MESSAGE, data)
    assert chatbot_problems(text) == []
    message: dict[str, Any] = json.loads(text)
    return message


def test_a_page_is_a_chatbot_notification_even_with_hostile_annotations(
    amtool: str, tmp_path: Path
) -> None:
    name = 'Backup"Too\\Old'
    message = chatbot(
        amtool, tmp_path, group(alert(name, summary=HOSTILE, description=HOSTILE + "\n\nmore"))
    )
    content = message["content"]
    assert content["title"] == f":rotating_light: FIRING: {name} (slipway-prod)"
    # Every character survives except the control character JSON cannot carry raw.
    kept = HOSTILE.replace("\x01", "")
    assert f'*{kept}*\n{kept}\n\nmore\n`flow=back"up`' in content["description"]
    assert content["nextSteps"] == [
        f"Runbook: {RUNBOOK_URL}",
        "Dashboard: https://g-abc.grafana-workspace.eu-west-1.amazonaws.com/d/slipway-ops",
    ]
    assert message["metadata"]["threadId"] == f"slipway-prod/{name}/page"


def test_the_resolved_notice_is_threaded_with_the_page(amtool: str, tmp_path: Path) -> None:
    firing = chatbot(amtool, tmp_path, group(alert("BackupTooOld")))
    resolved = chatbot(
        amtool, tmp_path, group(alert("BackupTooOld", status="resolved"), status="resolved")
    )
    assert resolved["content"]["title"].startswith(":white_check_mark: RESOLVED: BackupTooOld")
    assert resolved["metadata"]["threadId"] == firing["metadata"]["threadId"]
    assert resolved["metadata"]["eventType"] == "prometheus-alert-resolved"


def test_a_large_group_lists_ten_alerts_and_says_how_many_there_are(
    amtool: str, tmp_path: Path
) -> None:
    alerts = [alert("OpsFlowFailed", summary=f"flow {n} failed") for n in range(12)]
    message = chatbot(amtool, tmp_path, group(*alerts))
    description = message["content"]["description"]
    assert "flow 9 failed" in description
    assert "flow 10 failed" not in description
    assert description.endswith("(the first 10 of 12 alerts)")


def test_a_rule_without_runbook_or_dashboard_still_renders(amtool: str, tmp_path: Path) -> None:
    bare = alert("NewAlert")
    bare["annotations"] = {"summary": "s", "description": "d"}
    message = chatbot(amtool, tmp_path, group(bare))
    assert message["content"]["nextSteps"] == [
        "Runbook: none yet (add a runbook annotation to the rule)"
    ]


def test_a_ticket_email_names_the_alert_and_its_runbook(amtool: str, tmp_path: Path) -> None:
    data = group(alert("BackupTooOld", summary="No backup", description=HOSTILE))
    subject = render(amtool, tmp_path, alert_messages.EMAIL_SUBJECT, data)
    body = render(amtool, tmp_path, alert_messages.EMAIL_MESSAGE, data)
    assert subject == "[FIRING:1] BackupTooOld (slipway-prod)"
    assert body.startswith("BackupTooOld is FIRING on slipway-prod (severity page).")
    assert f"Runbook: {RUNBOOK_URL}" in body
    assert "- No backup" in body


def test_the_email_subject_stays_within_what_sns_accepts(amtool: str, tmp_path: Path) -> None:
    """SNS refuses subjects of 100 characters or more, with line breaks or non-ASCII: the whole
    notification would be lost."""
    data = group(alert("Very\nLong" + "X" * 150 + "é"))
    subject = render(amtool, tmp_path, alert_messages.EMAIL_SUBJECT, data)
    assert len(subject) < 100
    assert subject.isascii()
    assert subject.isprintable()
    assert subject.startswith("[FIRING:1] VeryLongXXX")


def test_links_that_would_break_the_template_or_json_are_refused() -> None:
    with pytest.raises(ValueError, match=r"slipway\.grafana_url"):
        alert_messages.template_text(AlertLinks("slipway-prod", "https://x/", 'https://g"}}'))


def test_the_deployed_configuration_passes_amtool_check_config(amtool: str, tmp_path: Path) -> None:
    definition = alerting.AlertManagerDefinition.parse(
        alerting.alertmanager_definition(
            "eu-west-1",
            "arn:aws:sns:eu-west-1:123456789012:slipway-prod-alerts-pages",
            "arn:aws:sns:eu-west-1:123456789012:slipway-prod-alerts-tickets",
            LINKS,
        )
    )
    for name, text in definition.template_files.items():
        (tmp_path / name).write_text(text)
    config = {**definition.config, "templates": [str(tmp_path / "*.tmpl")]}
    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [amtool, "check-config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " - 1 templates" in result.stdout
