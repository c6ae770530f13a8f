"""The alert manager's notification templates, bound to one stack's links.

`alert_messages.tmpl` holds the messages (an AWS Chatbot custom notification for pages, a
plain-text e-mail for tickets); this module appends the stack's constants as named templates.
Pure functions (no Pulumi), so tests render exactly what the program deploys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_FILE = Path(__file__).with_name("alert_messages.tmpl")
TEMPLATE_FILE_NAME = "slipway.tmpl"
# Names of the templates the receivers use.
CHATBOT_MESSAGE = "slipway.chatbot.message"
EMAIL_SUBJECT = "slipway.email.subject"
EMAIL_MESSAGE = "slipway.email.message"
# The constants are written into the template source and into JSON strings unescaped, so
# they may hold only characters that mean nothing to either.
_PLAIN = re.compile(r"[A-Za-z0-9_.:/#-]+")


@dataclass(frozen=True)
class AlertLinks:
    """Where a notification points: the stack it came from, runbooks, dashboards."""

    stack: str  # e.g. slipway-prod
    runbook_base: str  # prefixed to each rule's `runbook` annotation (a path in the repository)
    grafana_url: str  # prefixed to each rule's `dashboard` annotation (/d/<uid>)

    @staticmethod
    def for_stack(name_prefix: str, github_repository: str, grafana_url: str) -> AlertLinks:
        return AlertLinks(
            stack=name_prefix,
            runbook_base=f"https://github.com/{github_repository}/blob/main/",
            grafana_url=grafana_url.rstrip("/"),
        )


def template_text(links: AlertLinks) -> str:
    constants = {
        "slipway.stack": links.stack,
        "slipway.runbook_base": links.runbook_base,
        "slipway.grafana_url": links.grafana_url,
    }
    for name, value in constants.items():
        if not _PLAIN.fullmatch(value):
            raise ValueError(f"{name} {value!r} must match {_PLAIN.pattern}")
    defines = "".join(
        f'{{{{ define "{name}" }}}}{value}{{{{ end }}}}\n' for name, value in constants.items()
    )
    return TEMPLATE_FILE.read_text(encoding="utf-8") + defines


def use(template: str) -> str:
    """A receiver field rendering the named template."""
    return f'{{{{ template "{template}" . }}}}'
