"""Stripe for the payment tests, over real HTTP: localstripe, plus a tiny server of our own.

- `localstripe_url`: `localstripe` (PyPI) in a subprocess, once per session. It creates,
  updates, confirms and refunds PaymentIntents and lists the events they cause.
- `replaying_stripe`: what localstripe lacks, namely Idempotency-Key replay (localstripe makes a
  new PaymentIntent for every create) and answers lost on the way back, so the tests can show
  that a retried create never makes a second PaymentIntent (tests/api/payments_support.py).
- `payments_app` / `payments_client`: the API with Stripe configured, one app per backend.
- `billing_stripe`: our Stripe Billing server in front of localstripe (subscriptions, invoices,
  Checkout, the portal; tests/api/billing_emulator.py names each gap it fills);
  `billing_app` / `billing_client`: the API pointed at it.

Test modules load these fixtures with `pytest_plugins = ("tests.api.stripe_emulator",)`.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import pytest
import pytest_asyncio
import stripe
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Route

from api.payments.prices import load_price_catalog
from tests.api.billing_emulator import BillingStripe
from tests.api.billing_support import billing_settings
from tests.api.payments_support import STRIPE_SECRET_KEY, ReplayingStripe, payments_settings
from tests.conftest import AppHarness, delete_all_rows
from tests.live_server import free_port

START_TIMEOUT_SECONDS = 20


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the Stripe emulator exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {START_TIMEOUT_SECONDS}s")


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    with run_localstripe() as url:
        yield url


@pytest.fixture(scope="module")
def fresh_localstripe_url() -> Iterator[str]:
    """An emulator of the module's own, for tests that list everything Stripe holds (the
    session's emulator keeps the objects every earlier test created)."""
    with run_localstripe() as url:
        yield url


@contextlib.contextmanager
def run_localstripe() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        # --from-scratch: localstripe otherwise loads /tmp/localstripe.pickle, a file every
        # localstripe on the machine rewrites after each change (a concurrent run's half-written
        # file makes it exit at start-up, and old objects would leak into this session).
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def stripe_client(localstripe_url: str) -> stripe.StripeClient:
    """What a test uses to act as the customer's browser or Stripe's dashboard."""
    return stripe.StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": localstripe_url})


@contextmanager
def _serve(app: Starlette, *, date_header: bool = True) -> Iterator[str]:
    """A Starlette app on a free port in a thread, for the session."""
    port = free_port()
    config = uvicorn.Config(
        app, port=port, log_level="warning", lifespan="off", date_header=date_header
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def replaying_stripe() -> Iterator[ReplayingStripe]:
    emulator = ReplayingStripe()
    app = Starlette(
        routes=[Route("/v1/payment_intents", emulator.create_payment_intent, methods=["POST"])]
    )
    with _serve(app) as url:
        emulator.url = url
        yield emulator


@pytest.fixture(scope="session")
def billing_stripe(localstripe_url: str) -> Iterator[BillingStripe]:
    emulator = BillingStripe(catalog=load_price_catalog(), localstripe_url=localstripe_url)
    # The emulator stamps its own Date header: uvicorn's is refreshed once a second and may
    # lag the events' `created`, which Stripe's own clock never does.
    with _serve(emulator.app(), date_header=False) as url:
        emulator.url = url
        yield emulator


# --- apps ---


@pytest_asyncio.fixture(scope="session")
async def payments_app(app_harness: AppHarness, database_url: str, localstripe_url: str) -> FastAPI:
    """One app per backend for the session, with Stripe configured to use localstripe."""
    return await app_harness.start(payments_settings(database_url, localstripe_url))


@pytest_asyncio.fixture
async def payments_client(
    payments_app: FastAPI, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with AppHarness.client(payments_app) as http:
        yield http
    delete_all_rows(database_url)


@pytest_asyncio.fixture(scope="session")
async def billing_app(
    app_harness: AppHarness, database_url: str, billing_stripe: BillingStripe
) -> FastAPI:
    return await app_harness.start(billing_settings(database_url, billing_stripe.url))


@pytest_asyncio.fixture
async def billing_client(
    billing_app: FastAPI, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with AppHarness.client(billing_app) as http:
        yield http
    delete_all_rows(database_url)


@pytest_asyncio.fixture(scope="session")
async def replaying_app(
    app_harness: AppHarness, sqlite_url: str, replaying_stripe: ReplayingStripe
) -> FastAPI:
    return await app_harness.start(payments_settings(sqlite_url, replaying_stripe.url))


@pytest_asyncio.fixture
async def replaying_client(
    replaying_app: FastAPI, sqlite_url: str, replaying_stripe: ReplayingStripe
) -> AsyncIterator[httpx.AsyncClient]:
    replaying_stripe.reset()
    async with AppHarness.client(replaying_app) as http:
        yield http
    delete_all_rows(sqlite_url)
