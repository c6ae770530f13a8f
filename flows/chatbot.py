"""AWS Chatbot custom notifications: the only SNS message format Chatbot relays to Slack,
besides AWS's own service events (anything else is dropped without a trace).

Alert pages are rendered in this shape by the alert manager's template
(infra_pulumi/alert_messages.tmpl); code that publishes to the pages topic itself, such as a
flow's failure hook, builds the same message here:

    sns.publish(TopicArn=pages_topic_arn, Message=custom_notification(...))
"""

from __future__ import annotations

import json
from collections.abc import Sequence


def custom_notification(
    *,
    title: str,
    description: str,
    stack: str,
    severity: str,
    thread_id: str,
    next_steps: Sequence[str] = (),
    event_type: str = "slipway-notification",
) -> str:
    """The SNS message: Chatbot custom-notification JSON (version 1.0, source custom).

    Text is markdown as Slack renders it. `thread_id` keeps related notifications (a failure
    and its recovery) in one Slack thread.
    """
    if not description.strip():
        raise ValueError("a notification needs a description")
    notification = {
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": title,
            "description": description,
            "nextSteps": list(next_steps),
            "keywords": [severity, stack],
        },
        "metadata": {
            "threadId": f"{stack}/{thread_id}",
            "summary": f"{title} ({stack})",
            "eventType": event_type,
            "additionalContext": {"severity": severity, "stack": stack},
        },
    }
    return json.dumps(notification, ensure_ascii=False)
