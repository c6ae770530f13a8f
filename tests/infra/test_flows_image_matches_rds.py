"""pg_dump refuses a server newer than itself, and a newer pg_dump writes dumps an older server
cannot restore: the flows image's PostgreSQL client must match the stack's RDS major version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra_pulumi.plan import Plan
from tests.infra.conftest import one

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile.flows"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_flows_image_postgresql_client_matches_the_rds_major_version(
    plans: dict[str, Plan], stack: str
) -> None:
    engine_major = str(one(plans[stack], "aws:rds/instance:Instance").props["engineVersion"])
    engine_major = engine_major.split(".")[0]
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.findall(r"postgresql-client-(\d+)", text) == [engine_major]
    # pg_dump on PATH is that client's, not a wrapper's choice.
    assert f"PATH=/usr/lib/postgresql/{engine_major}/bin:" in text
