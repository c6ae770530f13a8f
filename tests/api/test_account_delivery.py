"""Account mail through the other transports and a broken server, end to end over HTTP: the
development outbox (what `make run` does), Amazon SES (moto), and an SMTP server that is dead
or hangs, which must delay no request and lose no message uncounted."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import boto3
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from api.email.setup import email_sender_of
from api.observability.metrics import email_messages_total
from tests.api.auth_helpers import STRONG_PASSWORD, unique_email
from tests.api.conftest import SES_REGION
from tests.api.email_support import UnresponsiveSmtpServer
from tests.conftest import AppHarness, delete_all_rows, make_settings

_LINK = re.compile(r"/verify-email#token=[A-Za-z0-9_-]+")


def _failed(template: str) -> float:
    value: float = email_messages_total.labels(template=template, outcome="failed")._value.get()
    return value


async def test_make_run_writes_the_verification_mail_to_the_outbox(
    app_harness: AppHarness, database_url: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    app = await app_harness.start(make_settings(database_url, email_outbox_dir=outbox))
    email = unique_email()
    async with AppHarness.client(app) as client:
        body = {"email": email, "password": STRONG_PASSWORD}
        assert (await client.post("/v1/auth/register", json=body)).status_code == 201
        await client.post("/v1/auth/password-reset", json={"email": email})
    await email_sender_of(app).drain(10)
    texts = [path.read_text() for path in sorted(outbox.glob("*.eml"))]
    assert len(texts) == 2
    assert any(f"To: {email}" in text and "verify-email#token=" in text for text in texts)
    assert any("reset-password#token=" in text for text in texts)
    delete_all_rows(database_url)


async def test_ses_delivers_the_verification_mail(
    app_harness: AppHarness, database_url: str, ses_endpoint: str
) -> None:
    ses = boto3.client("sesv2", endpoint_url=ses_endpoint, region_name=SES_REGION)
    ses.create_email_identity(EmailIdentity="accounts.example.com")
    settings = make_settings(
        database_url,
        email_backend="ses",
        email_from="Acme <no-reply@accounts.example.com>",
    )
    app = await app_harness.start(settings)
    email = unique_email("ses")
    async with AppHarness.client(app) as client:
        body = {"email": email, "password": STRONG_PASSWORD}
        assert (await client.post("/v1/auth/register", json=body)).status_code == 201
    await email_sender_of(app).drain(10)
    sent = ses_backends[DEFAULT_ACCOUNT_ID][SES_REGION].sent_messages
    [message] = [m for m in sent if email in m.destinations[0]]
    assert _LINK.search(message.raw_data.replace("=\n", ""))
    delete_all_rows(database_url)


async def test_a_dead_smtp_server_delays_no_request_and_every_message_is_accounted_for(
    app_harness: AppHarness, database_url: str
) -> None:
    dead = UnresponsiveSmtpServer()
    hanging = UnresponsiveSmtpServer(hang=True)
    try:
        for server in (dead, hanging):
            settings = make_settings(
                database_url,
                email_smtp_url=server.url,
                email_max_attempts=3,
                email_retry_base_seconds=0.01,
            )
            app = await app_harness.start(settings)
            before = _failed("verify_email")
            async with AppHarness.client(app) as client:
                body = {"email": unique_email(), "password": STRONG_PASSWORD}
                response = await client.post("/v1/auth/register", json=body)
                assert response.status_code == 201
            if server is hanging:
                # The answer came while the mail server still held the connection unanswered.
                assert email_sender_of(app).pending == 1
                # The sender is connected, waiting for a greeting that never comes.
                assert await asyncio.to_thread(server.accepted.wait, 10)
                server.close()  # the server goes away: the attempts fail, then give up
            await email_sender_of(app).drain(10)
            assert email_sender_of(app).pending == 0
            assert _failed("verify_email") == before + 1
        assert dead.connections == 3  # retried, then counted as failed
    finally:
        dead.close()
        hanging.close()
        delete_all_rows(database_url)
