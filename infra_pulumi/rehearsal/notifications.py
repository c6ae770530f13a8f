"""What a delivered notification must look like: Slack-bound pages are AWS Chatbot custom
notifications (schema in tests/fixtures/chatbot, with its source), e-mailed tickets name their
alert and its runbook."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

CHATBOT_SCHEMA = (
    Path(__file__).resolve().parents[2]
    / "tests"
    / "fixtures"
    / "chatbot"
    / "custom-notification.schema.json"
)


@cache
def _chatbot_validator() -> Draft202012Validator:
    schema: dict[str, Any] = json.loads(CHATBOT_SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def chatbot_problems(message: str) -> list[str]:
    """Why Chatbot would drop this SNS message; [] when it is a valid custom notification."""
    try:
        document = json.loads(message)
    except json.JSONDecodeError as error:
        return [f"not JSON: {error}"]
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in _chatbot_validator().iter_errors(document)
    ]


def email_problems(subject: str, body: str, alertname: str, runbook_url: str) -> list[str]:
    """What an on-call reader of this e-mail would miss."""
    problems = []
    if alertname not in subject:
        problems.append(f"the subject does not name {alertname}")
    if alertname not in body:
        problems.append(f"the message does not name {alertname}")
    if runbook_url not in body:
        problems.append(f"the message does not link the runbook {runbook_url}")
    return problems
