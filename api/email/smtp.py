"""SMTP delivery through aiosmtplib: one connection per message, TLS as EMAIL_SMTP_URL says.

A connection per message keeps the transport stateless (nothing to keep alive between
Lambda invocations); account email is a trickle, not a bulk stream.
"""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from api.email.smtp_url import SmtpServer
from api.email.transport import PermanentEmailError, TransientEmailError

TIMEOUT_SECONDS = 15.0


def _refusal(code: int, stage: str) -> PermanentEmailError | TransientEmailError:
    # The server's text often repeats the recipient's address: only the code is kept.
    detail = f"SMTP server refused the {stage} with code {code}"
    if 400 <= code < 500:
        return TransientEmailError(detail)
    return PermanentEmailError(detail)


class SmtpTransport:
    name = "smtp"

    def __init__(self, server: SmtpServer, timeout: float = TIMEOUT_SECONDS) -> None:
        self.server = server
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        server = self.server
        try:
            await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                username=server.username,
                password=server.password,
                use_tls=server.implicit_tls,
                start_tls=server.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            raise _refusal(min(codes, default=550), "recipient") from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise PermanentEmailError(
                f"SMTP authentication failed with code {exc.code}: check EMAIL_SMTP_URL"
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise _refusal(exc.code, "message") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Unreachable, disconnected, timed out, or TLS failed to start.
            raise TransientEmailError(f"SMTP server unavailable: {type(exc).__name__}") from None
