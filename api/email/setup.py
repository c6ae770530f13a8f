"""Wires email into an app: the transport EMAIL_BACKEND names, the sender, and its draining.

On ECS the sender is drained (then closed) when the process shuts down. On Lambda the
lifespan ends after every invocation, and a frozen function runs nothing: each invocation
waits briefly for the messages it queued, and the rest go on at the next invocation.
"""

from __future__ import annotations

import importlib.util
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from api.email.outbox import OutboxTransport
from api.email.sender import EmailSender, start_counters
from api.email.smtp_url import parse_smtp_url
from api.email.templates import TEMPLATES
from api.email.transport import EmailTransport
from api.settings import Settings

SHUTDOWN_DRAIN_SECONDS = 10.0
INVOCATION_DRAIN_SECONDS = 3.0


class EmailConfigurationError(RuntimeError):
    """The configured transport cannot work; the start-up stops, naming the setting."""


def build_transport(settings: Settings) -> EmailTransport:
    # Only the configured transport is imported: aiosmtplib is of no use to an SES deployment.
    backend = settings.email_transport
    if backend == "smtp":
        from api.email.smtp import SmtpTransport

        assert settings.email_smtp_url is not None  # settings refuse smtp without a URL
        return SmtpTransport(parse_smtp_url(settings.email_smtp_url.get_secret_value()))
    if backend == "ses":
        from api.email.ses import SesTransport

        return SesTransport(settings.email_from, settings.email_ses_configuration_set)
    return OutboxTransport(settings.email_outbox_dir)


async def _check_transport(app: FastAPI) -> None:
    # find_spec looks for the package without importing it (the import waits for a message).
    if app.state.settings.email_transport == "ses" and importlib.util.find_spec("boto3") is None:
        raise EmailConfigurationError(
            "EMAIL_BACKEND=ses needs boto3: install the `ses` dependency group"
        )


async def _drain(app: FastAPI) -> None:
    await email_sender_of(app).drain(INVOCATION_DRAIN_SECONDS)


async def _close(app: FastAPI) -> None:
    await email_sender_of(app).close(SHUTDOWN_DRAIN_SECONDS)


def install_email(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    app.state.email_sender = EmailSender(
        build_transport(settings),
        from_address=settings.email_from,
        max_attempts=settings.email_max_attempts,
        retry_base_seconds=settings.email_retry_base_seconds,
        capacity=settings.email_queue_size,
    )
    start_counters(TEMPLATES)
    app.state.startup_hooks.append(_check_transport)
    app.state.invocation_end_hooks.append(_drain)
    app.state.shutdown_hooks.append(_close)


def email_sender_of(app: FastAPI) -> EmailSender:
    sender: EmailSender = app.state.email_sender
    return sender


async def get_email_sender(request: Request) -> EmailSender:
    return email_sender_of(request.app)


EmailSenderDep = Annotated[EmailSender, Depends(get_email_sender)]
