"""The rehearsal's copies of what AMP runs: the generated alert manager configuration with its
SNS receivers aimed at a local SNS, the rule files with short `for` durations, and a Prometheus
that scrapes the local API every second.

Only timing and endpoints change: receivers, routes, templates, messages and every rule
expression stay as the program generates them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from infra_pulumi.alerting import AlertManagerDefinition, RuleFile

# Seconds instead of minutes, so an alert fires within the rehearsal's bound.
INTERVAL = "1s"
FOR = "1s"
GROUP_WAIT = "1s"
# moto accepts any credentials; these only let the SNS client sign its requests.
LOCAL_SIGV4 = {"access_key": "rehearsal", "secret_key": "rehearsal"}


def local_alertmanager_config(
    definition: AlertManagerDefinition, template_dir: Path, sns_url: str
) -> dict[str, Any]:
    config = copy.deepcopy(definition.config)
    config["route"]["group_wait"] = GROUP_WAIT
    config["route"]["group_interval"] = GROUP_WAIT
    for receiver in config["receivers"]:
        for sns in receiver.get("sns_configs", []):
            sns["api_url"] = sns_url
            sns["sigv4"] = {**sns["sigv4"], **LOCAL_SIGV4}
    # AMP loads `template_files` itself; a standalone alert manager reads them from disk.
    config["templates"] = [str(template_dir / "*.tmpl")]
    return config


def write_templates(definition: AlertManagerDefinition, template_dir: Path) -> None:
    template_dir.mkdir(parents=True, exist_ok=True)
    for name, text in definition.template_files.items():
        (template_dir / f"{Path(name).stem}.tmpl").write_text(text, encoding="utf-8")


def quick_rules(rule_file: RuleFile) -> str:
    """The rule file with every `for` shortened to FOR; expressions untouched."""
    document = yaml.safe_load(rule_file.text)
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = FOR
    return yaml.safe_dump(document, sort_keys=False)


def prometheus_config(
    rule_paths: Sequence[Path], api_target: str, alertmanager_target: str, metrics_token: str
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL},
        "rule_files": [str(path) for path in rule_paths],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]},
        "scrape_configs": [
            {
                "job_name": "api",
                "authorization": {"credentials": metrics_token},
                "static_configs": [{"targets": [api_target]}],
            }
        ],
    }
