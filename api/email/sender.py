"""The bounded background sender: requests hand messages over and never wait for a server.

Each message becomes a task; at most `capacity` are pending (beyond that a message is dropped,
counted and logged, so a dead mail server cannot exhaust memory) and at most `concurrency`
talk to the transport at once. Transient failures are retried with exponential backoff and
jitter; a message still failing after the last attempt, refused for good, or abandoned at
shutdown is counted as failed. Logs name the template and a recipient reference, never the
address.

A job may also prepare its message in the background (`submit`): the password-reset request
does its account lookup there, so that the request itself does the same work whether or not
the account exists.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from api.email.message import OutgoingEmail, recipient_ref, to_mime
from api.email.transport import EmailTransport, PermanentEmailError, TransientEmailError
from api.observability.metrics import EMAIL_OUTCOMES, email_messages_total

logger = logging.getLogger("api.email")

Prepare = Callable[[], Awaitable[OutgoingEmail | None]]
MAX_RETRY_DELAY_SECONDS = 300.0
DEFAULT_CONCURRENCY = 4


def count(template: str, outcome: str) -> None:
    email_messages_total.labels(template=template, outcome=outcome).inc()


def start_counters(templates: tuple[str, ...]) -> None:
    """Known series start at 0, so the first failure shows in increase() on a dashboard."""
    for template in templates:
        for outcome in EMAIL_OUTCOMES:
            email_messages_total.labels(template=template, outcome=outcome)


class EmailSender:
    def __init__(
        self,
        transport: EmailTransport,
        *,
        from_address: str,
        max_attempts: int,
        retry_base_seconds: float,
        capacity: int,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.transport = transport
        self.from_address = from_address
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.capacity = capacity
        self._slots = asyncio.Semaphore(concurrency)
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def send(self, email: OutgoingEmail) -> bool:
        """Queue a rendered message; False when it was dropped because the queue is full."""

        async def ready() -> OutgoingEmail:
            return email

        return self.submit(email.template, ready)

    def submit(self, template: str, prepare: Prepare) -> bool:
        """Queue a job that prepares its message (None: nothing to send); never blocks."""
        if len(self._pending) >= self.capacity:
            count(template, "dropped")
            logger.error(
                "email dropped: the send queue is full",
                extra={"template": template, "capacity": self.capacity},
            )
            return False
        task = asyncio.get_running_loop().create_task(self._run(template, prepare))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def _run(self, template: str, prepare: Prepare) -> None:
        try:
            email = await prepare()
        except asyncio.CancelledError:
            count(template, "failed")
            raise
        except Exception:
            count(template, "failed")
            logger.exception("email job failed before sending", extra={"template": template})
            return
        if email is not None:
            await self._deliver(email)

    def _retry_delay(self, attempt: int) -> float:
        ceiling = min(MAX_RETRY_DELAY_SECONDS, self.retry_base_seconds * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret

    async def _deliver(self, email: OutgoingEmail) -> None:
        context = {"template": email.template, "recipient_ref": recipient_ref(email.to)}
        message = to_mime(email, self.from_address)
        try:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    async with self._slots:
                        await self.transport.send(message)
                except TransientEmailError as exc:
                    if attempt == self.max_attempts:
                        count(email.template, "failed")
                        logger.error(
                            "email not delivered: every attempt failed",
                            extra={**context, "attempts": attempt, "error": str(exc)},
                        )
                        return
                    delay = self._retry_delay(attempt)
                    logger.warning(
                        "email delivery failed; retrying",
                        extra={
                            **context,
                            "attempt": attempt,
                            "retry_in": round(delay, 3),
                            "error": str(exc),
                        },
                    )
                    await asyncio.sleep(delay)
                else:
                    count(email.template, "sent")
                    logger.info(
                        "email sent",
                        extra={**context, "transport": self.transport.name, "attempts": attempt},
                    )
                    return
        except PermanentEmailError as exc:
            count(email.template, "failed")
            logger.error("email refused", extra={**context, "error": str(exc)})
        except asyncio.CancelledError:
            count(email.template, "failed")
            logger.error("email abandoned at shutdown", extra=context)
            raise
        except Exception:
            count(email.template, "failed")
            logger.exception("email transport error", extra=context)

    async def drain(self, grace_seconds: float) -> None:
        """Wait that long at most for queued messages (shutdown, end of an invocation)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=grace_seconds)

    async def close(self, grace_seconds: float) -> None:
        """Drain, then abandon (and count as failed) whatever is still pending."""
        await self.drain(grace_seconds)
        remaining = set(self._pending)
        for task in remaining:
            task.cancel()
        if remaining:
            await asyncio.gather(*remaining, return_exceptions=True)
