"""The start shim builds DATABASE_URL from the RDS-managed secret's parts, URL-encoded."""

from __future__ import annotations

import subprocess
import sys

from infra_pulumi.components._containers import with_database_url


def test_shim_composes_an_encoded_database_url_and_execs_the_command() -> None:
    command = with_database_url(
        [sys.executable, "-c", "import os; print(os.environ['DATABASE_URL'])"]
    )
    command[0] = sys.executable
    env = {
        "DATABASE_USER": "slipway",
        "DATABASE_PASSWORD": "p@ss:w/rd#?%",
        "DATABASE_HOST": "db.internal",
        "DATABASE_NAME": "slipway",
    }
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == (
        "postgresql+psycopg://slipway:p%40ss%3Aw%2Frd%23%3F%25@db.internal:5432/slipway?sslmode=require"
    )
