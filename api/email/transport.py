"""The one interface every transport implements, and the errors that decide retries."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class EmailDeliveryError(Exception):
    """Delivery failed; the message must not contain the recipient's address."""


class TransientEmailError(EmailDeliveryError):
    """Worth retrying: the server was unreachable, slow, busy or throttling."""


class PermanentEmailError(EmailDeliveryError):
    """Retrying cannot help: the message or the configuration was refused."""


class EmailTransport(Protocol):
    name: str

    async def send(self, message: EmailMessage) -> None:
        """Deliver one message or raise an EmailDeliveryError."""
