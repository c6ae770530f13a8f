"""Alert rules and routing as data: what the AMP workspace receives.

Pure functions (no Pulumi), so tests and `make infra-plan` read the same files the program does.
`dashboards/alerts/*.yml` and `dashboards/generated/*.json` are written by the dashboards work;
either folder may be empty or missing while it is being written, and that is not an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra_pulumi import alert_messages
from infra_pulumi.alert_messages import AlertLinks

REPO_ROOT = Path(__file__).resolve().parent.parent
ALERTS_DIR = REPO_ROOT / "dashboards" / "alerts"
DASHBOARDS_DIR = REPO_ROOT / "dashboards" / "generated"
# severity label -> receiver; the dashboards' alert rules set one of these on every alert.
SEVERITY_RECEIVERS = {"page": "slack-pages", "ticket": "email-tickets"}


@dataclass(frozen=True)
class RuleFile:
    name: str
    text: str


@dataclass(frozen=True)
class DashboardFile:
    slug: str
    json_text: str
    title: str


def load_rule_files(directory: Path = ALERTS_DIR) -> list[RuleFile]:
    """Prometheus rule files (`groups:`), skipping promtool unit-test files."""
    if not directory.is_dir():
        return []
    files: list[RuleFile] = []
    for path in sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")]):
        text = path.read_text(encoding="utf-8")
        if "rule_files:" in text or path.stem.endswith(("_test", ".test")):
            continue
        if "groups:" not in text:
            continue
        files.append(RuleFile(name=path.stem.replace(".", "-"), text=text))
    return files


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> list[DashboardFile]:
    if not directory.is_dir():
        return []
    dashboards: list[DashboardFile] = []
    for path in sorted(directory.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        try:
            model = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path.name} is not valid JSON: {error}") from None
        if not isinstance(model, dict):
            raise ValueError(f"{path.name} must hold one dashboard object")
        # Grafana assigns ids itself; a stale id from another instance makes the API refuse.
        model.pop("id", None)
        dashboards.append(
            DashboardFile(
                slug=path.stem,
                json_text=json.dumps(model, sort_keys=True),
                title=str(model.get("title", path.stem)),
            )
        )
    return dashboards


def alertmanager_definition(
    region: str, page_topic_arn: str, ticket_topic_arn: str, links: AlertLinks
) -> str:
    """AMP alert manager definition: severity page -> Slack (SNS -> AWS Chatbot, as its custom
    notification JSON), ticket -> e-mail (SNS), each message naming its runbook."""

    def receiver(name: str, topic_arn: str, severity: str, message: str) -> dict[str, object]:
        return {
            "name": name,
            "sns_configs": [
                {
                    "topic_arn": topic_arn,
                    "sigv4": {"region": region},
                    "attributes": {"severity": severity},
                    "subject": alert_messages.use(alert_messages.EMAIL_SUBJECT),
                    "message": alert_messages.use(message),
                }
            ],
        }

    config = {
        "route": {
            "receiver": SEVERITY_RECEIVERS["ticket"],
            "group_by": ["alertname", "severity"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"match": {"severity": "page"}, "receiver": SEVERITY_RECEIVERS["page"]},
                {"match": {"severity": "ticket"}, "receiver": SEVERITY_RECEIVERS["ticket"]},
            ],
        },
        "receivers": [
            receiver(
                SEVERITY_RECEIVERS["page"], page_topic_arn, "page", alert_messages.CHATBOT_MESSAGE
            ),
            receiver(
                SEVERITY_RECEIVERS["ticket"],
                ticket_topic_arn,
                "ticket",
                alert_messages.EMAIL_MESSAGE,
            ),
        ],
    }
    # JSON is YAML: the document needs no YAML library, only literal blocks indented under keys.
    return "\n".join(
        [
            "template_files:",
            f"  {alert_messages.TEMPLATE_FILE_NAME}: |",
            _indented(alert_messages.template_text(links), 4),
            "alertmanager_config: |",
            _indented(json.dumps(config, indent=2), 2),
        ]
    )


@dataclass(frozen=True)
class AlertManagerDefinition:
    """An AMP alert manager definition, read back: template files and the configuration."""

    template_files: dict[str, str]
    config: dict[str, Any]

    @staticmethod
    def parse(text: str) -> AlertManagerDefinition:
        document = yaml.safe_load(text)
        return AlertManagerDefinition(
            template_files=dict(document.get("template_files") or {}),
            config=yaml.safe_load(document["alertmanager_config"]),
        )


def _indented(text: str, spaces: int) -> str:
    return "\n".join(f"{' ' * spaces}{line}" if line else "" for line in text.splitlines())
