"""Notifications built in Python for the pages topic are the Chatbot custom notifications the
alert manager's template produces: valid against the schema, whatever the text holds."""

from __future__ import annotations

import json

import pytest

from flows.chatbot import custom_notification
from infra_pulumi.rehearsal.notifications import chatbot_problems

HOSTILE = 'backup "failed" \\ C:\\dump\n\ttraceback\x00 {{ x }} ünï 🚨'


def test_a_flow_failure_notice_is_a_valid_chatbot_notification() -> None:
    message = custom_notification(
        title=":x: Flow run failed: backup",
        description=HOSTILE,
        stack="slipway-prod",
        severity="page",
        thread_id="flow/backup",
        next_steps=["Runbook: https://github.com/acme/slipway/blob/main/docs/alerts.md"],
    )
    assert chatbot_problems(message) == []
    document = json.loads(message)
    assert document["content"]["description"] == HOSTILE
    assert document["metadata"]["threadId"] == "slipway-prod/flow/backup"


def test_the_schema_check_rejects_what_chatbot_would_drop() -> None:
    assert chatbot_problems("[FIRING:1] BackupTooOld") != []
    assert chatbot_problems('{"version": "1.0", "source": "custom"}') == [
        "(root): 'content' is a required property"
    ]
    plain = json.loads(
        custom_notification(title="t", description="d", stack="s", severity="page", thread_id="x")
    )
    plain["content"]["descripton"] = plain["content"].pop("description")
    assert len(chatbot_problems(json.dumps(plain))) == 2


def test_an_empty_description_is_refused() -> None:
    with pytest.raises(ValueError, match="description"):
        custom_notification(title="t", description=" ", stack="s", severity="page", thread_id="x")
