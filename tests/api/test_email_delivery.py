"""Outgoing email through each real transport: SMTP (aiosmtpd with STARTTLS and AUTH),
Amazon SES (moto over HTTP) and the development outbox; retries, drops and their metric."""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from api.email.message import OutgoingEmail
from api.email.sender import EmailSender
from api.email.setup import build_transport
from api.email.templates import render
from api.observability.metrics import email_messages_total
from api.settings import Settings
from tests.api.conftest import SES_REGION
from tests.api.email_support import SmtpServer, UnresponsiveSmtpServer, parts

FROM = "Acme <no-reply@mail.example.com>"


def _settings(**values: Any) -> Settings:
    return Settings(app_env="test", email_from=FROM, **values)


def _sender(settings: Settings, **overrides: Any) -> EmailSender:
    options: dict[str, Any] = {
        "from_address": settings.email_from,
        "max_attempts": 3,
        "retry_base_seconds": 0.01,
        "capacity": 10,
    }
    options.update(overrides)
    return EmailSender(build_transport(settings), **options)


def _count(template: str, outcome: str) -> float:
    value: float = email_messages_total.labels(template=template, outcome=outcome)._value.get()
    return value


def _message(to: str, template: str = "verify_email") -> OutgoingEmail:
    return render(
        template,
        to,
        product="Acme <Rockets> & Co",
        link="https://app.example.com/verify-email#token=abc",
        valid_for="2 days",
    )


async def test_smtp_delivers_a_multipart_message_over_starttls_with_auth(
    smtp_server: SmtpServer,
) -> None:
    sender = _sender(_settings(email_smtp_url=smtp_server.url))
    before = _count("verify_email", "sent")
    assert sender.send(_message("ada@example.com"))
    await sender.drain(10)
    message = await smtp_server.wait_for(lambda m: m["To"] == "ada@example.com")
    assert message["From"] == FROM
    assert message["Subject"] == "Confirm your email address for Acme <Rockets> & Co"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@mail.example.com>")
    text, html = parts(message)
    assert "https://app.example.com/verify-email#token=abc" in text
    assert "Acme <Rockets> & Co" in text
    # Values are escaped in HTML: the product name cannot inject markup.
    assert "Acme &lt;Rockets&gt; &amp; Co" in html
    assert "<Rockets>" not in html
    assert _count("verify_email", "sent") == before + 1


async def test_wrong_smtp_credentials_fail_without_retry(smtp_server: SmtpServer) -> None:
    url = smtp_server.url.replace("s3cret", "wrong")
    sender = _sender(_settings(email_smtp_url=url))
    before = _count("password_changed", "failed")
    sender.send(
        render("password_changed", "bob@example.com", product="Acme", changed_at="now", sessions="")
    )
    await sender.drain(10)
    assert _count("password_changed", "failed") == before + 1
    assert not any(m["To"] == "bob@example.com" for m in smtp_server.messages)


@pytest.fixture
def dead_smtp() -> Iterator[UnresponsiveSmtpServer]:
    server = UnresponsiveSmtpServer()
    yield server
    server.close()


async def test_a_dead_smtp_server_is_retried_then_counted_failed_without_the_address(
    dead_smtp: UnresponsiveSmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    sender = _sender(_settings(email_smtp_url=dead_smtp.url), max_attempts=3)
    before = _count("password_reset", "failed")
    address = "carol.secret@example.com"
    caplog.set_level(logging.INFO, logger="api.email")
    email = render("password_reset", address, product="Acme", link="https://x/#t", valid_for="1")
    assert sender.send(email)
    await sender.drain(10)
    assert sender.pending == 0
    assert dead_smtp.connections == 3  # every attempt reached the server
    assert _count("password_reset", "failed") == before + 1
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "carol.secret" not in logged
    assert "every attempt failed" in logged
    assert any(getattr(record, "recipient_ref", None) for record in caplog.records)


async def test_a_full_queue_drops_and_counts_instead_of_growing(
    dead_smtp: UnresponsiveSmtpServer,
) -> None:
    sender = _sender(_settings(email_smtp_url=dead_smtp.url), capacity=2, retry_base_seconds=0.2)
    before = _count("verify_email", "dropped")
    accepted = [sender.send(_message(f"u{index}@example.com")) for index in range(4)]
    assert accepted == [True, True, False, False]
    assert _count("verify_email", "dropped") == before + 2
    failed_before = _count("verify_email", "failed")
    await sender.close(grace_seconds=0)  # abandoned messages are counted, not forgotten
    assert _count("verify_email", "failed") == failed_before + 2


async def test_outbox_writes_private_eml_files_and_logs_their_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "outbox"
    sender = _sender(_settings(email_outbox_dir=outbox))
    caplog.set_level(logging.INFO, logger="api.email")
    sender.send(_message("dan@example.com"))
    await sender.drain(10)
    (path,) = outbox.glob("*.eml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "To: dan@example.com" in path.read_text()
    assert any(getattr(record, "path", None) == str(path) for record in caplog.records)


async def test_ses_sends_the_raw_message_through_the_sesv2_api(ses_endpoint: str) -> None:
    ses = boto3.client("sesv2", endpoint_url=ses_endpoint, region_name=SES_REGION)
    ses.create_email_identity(EmailIdentity="mail.example.com")
    ses.create_configuration_set(ConfigurationSetName="acme-events")
    settings = _settings(email_backend="ses", email_ses_configuration_set="acme-events")
    sender = _sender(settings)
    before = _count("verify_email", "sent")
    sender.send(_message("erin@example.com"))
    await sender.drain(10)
    assert _count("verify_email", "sent") == before + 1
    sent = ses_backends[DEFAULT_ACCOUNT_ID][SES_REGION].sent_messages
    raw = [m for m in sent if "erin@example.com" in m.destinations[0]]
    assert len(raw) == 1
    assert "Confirm your email address for Acme" in raw[0].raw_data


async def test_ses_refusal_is_permanent(ses_endpoint: str) -> None:
    # An identity nobody verified: SES refuses the sender, and retrying cannot help.
    settings = Settings(app_env="test", email_from="x@unverified.example.org", email_backend="ses")
    sender = _sender(settings)
    before = _count("verify_email", "failed")
    sender.send(_message("frank@example.com"))
    await sender.drain(10)
    assert _count("verify_email", "failed") == before + 1


def test_settings_refuse_smtp_without_a_url_and_never_echo_the_password() -> None:
    from api.settings import SettingsError, load_settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMAIL_BACKEND", "smtp")
        with pytest.raises(SettingsError, match="EMAIL_SMTP_URL is required"):
            load_settings()
        patch.setenv("EMAIL_SMTP_URL", "smtp://user:hunter2hunter2@host:notaport")
        with pytest.raises(SettingsError) as refused:
            load_settings()
    assert "hunter2" not in str(refused.value)
    assert "EMAIL_SMTP_URL" in str(refused.value)


def test_the_backend_follows_the_smtp_url_unless_named() -> None:
    assert _settings().email_transport == "outbox"
    assert _settings(email_smtp_url="smtp://h:25").email_transport == "smtp"
    assert _settings(email_smtp_url="smtp://h:25", email_backend="ses").email_transport == "ses"


def test_settings_refuse_an_smtp_url_with_unknown_parameters() -> None:
    with pytest.raises(ValueError, match="unknown parameters"):
        _settings(email_smtp_url="smtp://h:25?tls=yes")


async def test_sending_never_waits_for_the_server(dead_smtp: UnresponsiveSmtpServer) -> None:
    sender = _sender(_settings(email_smtp_url=dead_smtp.url), retry_base_seconds=5)
    assert sender.send(_message("gus@example.com"))
    # send() returned without awaiting anything: the message is still pending.
    assert sender.pending == 1
    await asyncio.sleep(0)
    await sender.close(grace_seconds=0)
