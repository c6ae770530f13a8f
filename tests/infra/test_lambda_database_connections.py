"""The dev stack's API function holds few database connections, and all of its instances
together fit in the database's max_connections (the policy rule's budget)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from sqlalchemy import text

from api.main import create_app
from infra_pulumi.plan import Plan
from tests.conftest import make_settings
from tests.infra.conftest import one

FUNCTION = "aws:lambda/function:Function"


def test_the_api_function_caps_its_instances_and_their_pools(dev: Plan) -> None:
    function = one(dev, FUNCTION).props
    variables = function["environment"]["variables"]
    assert function["reservedConcurrentExecutions"] == 10
    assert (variables["DATABASE_POOL_SIZE"], variables["DATABASE_MAX_OVERFLOW"]) == ("1", "2")


@pytest.mark.postgres
async def test_a_lambda_instance_keeps_one_connection_and_opens_at_most_two_more(
    dev: Plan, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables = one(dev, FUNCTION).props["environment"]["variables"]
    for name in ("DATABASE_POOL_SIZE", "DATABASE_MAX_OVERFLOW"):
        monkeypatch.setenv(name, variables[name])
    # As api.lambda_handler builds it, with the function's settings.
    app = create_app(make_settings(postgres_url), dispose_on_shutdown=False)
    database = app.state.database
    pool = database.engine.pool
    try:
        assert pool.size() == 1
        async with AsyncExitStack() as held:
            for _ in range(3):
                connection = await held.enter_async_context(database.engine.connect())
                await connection.execute(text("SELECT 1"))
            # A fourth waits for one of the three to come back.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(database.engine.connect().start(), timeout=1)
        # Between invocations only the pooled one stays open; the overflow ones are closed.
        assert (pool.checkedin(), pool.checkedout()) == (1, 0)
    finally:
        await database.dispose()
