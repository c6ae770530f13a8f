"""Wherever the app is started, uvicorn leaves X-Forwarded-For to the app (TRUSTED_PROXIES).

Regression test for an outside probe's finding: `make run` started uvicorn with its defaults,
which believe X-Forwarded-For from 127.0.0.1, so any local client (or a local reverse proxy
passing the header through) chose the address the API records and rate-limits. Here the
exact command `make run` executes serves the app, and a forged header must change nothing.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.api.auth_helpers import STRONG_PASSWORD, unique_email
from tests.conftest import GENEROUS_RATE_LIMITS_FILE, ROOT, TEST_JWT_PRIVATE_KEY, migrate
from tests.live_server import serve_api

FORGED = "203.0.113.9"


def _make_run_arguments(port: int) -> Sequence[str]:
    """The arguments `make run` passes to uvicorn, read from `make -n` (nothing is run)."""
    plan = subprocess.run(
        ["make", "-n", "run", "HOST=127.0.0.1", f"PORT={port}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    [line] = [line for line in plan.splitlines() if " uvicorn " in line]
    words = shlex.split(line)
    return words[words.index("uvicorn") + 1 :]


def test_make_run_ignores_forwarded_for(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'run.db'}"
    migrate(database_url)
    environment = {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "JWT_PRIVATE_KEYS": TEST_JWT_PRIVATE_KEY,
        "RATE_LIMITS_FILE": str(GENEROUS_RATE_LIMITS_FILE),
    }
    forged = {"X-Forwarded-For": FORGED, "Forwarded": f"for={FORGED}"}
    with (
        serve_api(environment, tmp_path / "uvicorn.log", _make_run_arguments) as server,
        httpx.Client(base_url=server.url, headers=forged) as client,
    ):
        credentials = {"email": unique_email(), "password": STRONG_PASSWORD}
        assert client.post("/v1/auth/register", json=credentials).status_code == 201
        login = client.post("/v1/auth/login", json=credentials)
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        sessions = client.get("/v1/auth/sessions", headers={"Authorization": f"Bearer {token}"})
    assert [session["ip"] for session in sessions.json()] == ["127.0.0.1"]


def test_every_documented_start_command_disables_proxy_headers() -> None:
    """The Makefile, the Dockerfile and the docs: no way to start the app believes the header."""
    sources = [ROOT / "Makefile", ROOT / "Dockerfile", ROOT / "README.md"]
    sources += sorted((ROOT / "docs").rglob("*.md"))
    starts = [
        (source.name, line)
        for source in sources
        for line in source.read_text().splitlines()
        if "uvicorn" in line and "api.main:app" in line and ("run" in line or "CMD" in line)
    ]
    assert any(name == "Makefile" for name, _ in starts)
    assert [start for start in starts if "--no-proxy-headers" not in start[1]] == []
