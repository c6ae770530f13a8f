"""Models and migrations never drift, and every migration can be undone."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from api.models import metadata
from tests.conftest import alembic_config, migrate


def _sync(url: str) -> str:
    return url.replace("sqlite+aiosqlite", "sqlite")


def _autogenerate_diff(database_url: str) -> list[object]:
    engine = create_engine(_sync(database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "compare_server_default": True},
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_models_match_migrations(database_url: str) -> None:
    """Autogenerate against a database migrated to head finds nothing to do."""
    assert _autogenerate_diff(database_url) == []


def test_history_is_linear() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    assert len(script.get_heads()) == 1, "migrations branched: merge the heads"


def test_downgrade_to_base_and_upgrade_again(tmp_path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.db'}"
    migrate(url)
    command.downgrade(alembic_config(url), "base")
    engine = create_engine(_sync(url))
    try:
        remaining = set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()
    assert remaining == set()
    migrate(url)
    assert _autogenerate_diff(url) == []
