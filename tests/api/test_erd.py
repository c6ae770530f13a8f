from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_erd_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/generate_erd.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_erd_shows_every_table() -> None:
    from api.models import metadata

    erd = (ROOT / "docs" / "erd.md").read_text()
    assert "```mermaid\nerDiagram" in erd
    for table in metadata.tables:
        assert f"    {table} {{" in erd
