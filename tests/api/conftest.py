"""Mail servers for the API tests that send email (see tests/api/email_support.py), and the
round-trip counting proxy in front of PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from moto.server import ThreadedMotoServer

from tests.api.email_support import SmtpServer, free_port, write_self_signed_certificate
from tests.api.round_trips import PostgresWire

SES_REGION = "eu-west-1"


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    """One real SMTP server for the session; tests tell their messages apart by recipient."""
    cert_path, key_path = write_self_signed_certificate(tmp_path_factory.mktemp("smtp-tls"))
    server = SmtpServer(cert_path, key_path)
    server.start()
    # The client verifies the server's certificate against this CA, as it would a real relay's.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(cert_path))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def ses_endpoint() -> Iterator[str]:
    """moto's SES over real HTTP; boto3 reaches it through AWS_ENDPOINT_URL_SESV2."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ENDPOINT_URL_SESV2": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": SES_REGION,
            "AWS_REGION": SES_REGION,
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        try:
            yield endpoint
        finally:
            server.stop()


@pytest_asyncio.fixture(scope="session")
async def postgres_wire(postgres_url: str) -> AsyncIterator[PostgresWire]:
    """A proxy in front of the session's PostgreSQL database that counts round trips: apps
    started with `make_settings(postgres_wire.url)` connect through it (tests/api/round_trips)."""
    wire = PostgresWire(postgres_url)
    await wire.start()
    try:
        yield wire
    finally:
        await wire.cut()
