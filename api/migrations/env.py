"""Alembic environment: async engine, URL from DATABASE_URL (or the caller's config)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from api.database_roles import provision_app_role
from api.db import create_engine
from api.models import metadata
from api.settings import get_settings

config = context.config


def _database_url() -> str:
    # Tests and tools pass a URL through the Config object; everyone else uses DATABASE_URL.
    url = config.attributes.get("database_url")
    return str(url) if url else get_settings().database_url


def _app_role() -> tuple[str, str] | None:
    """The role the API runs as (DATABASE_APP_USER/PASSWORD, or the caller's config)."""
    given = config.attributes.get("database_app_role")
    if given:
        return str(given[0]), str(given[1])
    if config.attributes.get("database_url"):
        return None  # a caller's URL: only the caller's config decides
    settings = get_settings()
    if settings.database_app_user and settings.database_app_password:
        return settings.database_app_user, settings.database_app_password.get_secret_value()
    return None


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        role = _app_role()
        if role is not None and connection.dialect.name == "postgresql":
            provision_app_role(connection, *role)


async def _run_online() -> None:
    engine = create_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
