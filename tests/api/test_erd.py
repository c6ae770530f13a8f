from __future__ import annotations

from pathlib import Path

from api.models import metadata
from scripts.generate_erd import ERD_PATH, render


def test_erd_is_fresh() -> None:
    assert ERD_PATH.read_text() == render(), "docs/erd.md is stale: run `make erd`"


def test_erd_shows_every_table_and_relationship() -> None:
    erd = Path(ERD_PATH).read_text()
    assert "```mermaid\nerDiagram" in erd
    for table in metadata.sorted_tables:
        assert f"    {table.name} {{" in erd
        for foreign_key in table.foreign_keys:
            assert f"{foreign_key.column.table.name} " in erd
            assert f'{table.name} : "{foreign_key.parent.name}"' in erd
