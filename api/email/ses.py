"""Amazon SES delivery through the SES v2 API (SendEmail with the raw MIME message).

boto3 is imported, and its client built, on the first message only, in a worker thread: the
API's import graph and the Lambda cold start carry none of it, and neither does the event
loop. Credentials and region come from the task or function role (AWS_REGION).
"""

from __future__ import annotations

import asyncio
import threading
from email.message import EmailMessage
from typing import Any

from api.email.transport import PermanentEmailError, TransientEmailError

# Errors SES documents as worth retrying; anything else refused is permanent.
_TRANSIENT_CODES = frozenset(
    {
        "TooManyRequestsException",
        "LimitExceededException",
        "Throttling",
        "ThrottlingException",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
    }
)


class SesTransport:
    name = "ses"

    def __init__(self, from_address: str, configuration_set: str | None) -> None:
        self.from_address = from_address
        self.configuration_set = configuration_set
        self._client: Any = None
        self._client_lock = threading.Lock()

    def _ses(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                # Retries are the sender's (backoff, metric); botocore tries once.
                config = Config(
                    connect_timeout=5, read_timeout=15, retries={"total_max_attempts": 1}
                )
                self._client = boto3.client("sesv2", config=config)
            return self._client

    def _send(self, message: EmailMessage) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        request: dict[str, Any] = {
            "FromEmailAddress": self.from_address,
            "Destination": {"ToAddresses": [str(message["To"])]},
            "Content": {"Raw": {"Data": message.as_bytes()}},
        }
        if self.configuration_set:
            request["ConfigurationSetName"] = self.configuration_set
        try:
            self._ses().send_email(**request)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
            if code in _TRANSIENT_CODES:
                raise TransientEmailError(f"SES refused the message for now: {code}") from None
            raise PermanentEmailError(f"SES refused the message: {code}") from None
        except BotoCoreError as exc:
            raise TransientEmailError(f"SES unavailable: {type(exc).__name__}") from None

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)
