"""Write docs/erd.md: a Mermaid ER diagram of the SQLModel metadata (`make erd`).

`--check` exits 1 when the committed file is stale; a test runs the same comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import Column, Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.models import metadata  # noqa: E402

ERD_PATH = ROOT / "docs" / "erd.md"
HEADER = """# Entity-relationship diagram

Generated from the SQLModel metadata by `scripts/generate_erd.py` (`make erd`); do not edit by
hand — a test fails when this file is stale.
"""


def _column_type(column: Column[object]) -> str:
    try:
        rendered = str(column.type.compile())
    except Exception:  # a type without a generic rendering: fall back to its class name
        rendered = type(column.type).__name__
    return rendered.split("(")[0].replace(" ", "_").lower()


def _column_line(column: Column[object]) -> str:
    keys = [key for key, flag in (("PK", column.primary_key), ("FK", column.foreign_keys)) if flag]
    if column.unique or any(
        index.unique and list(index.columns) == [column] for index in column.table.indexes
    ):
        keys.append("UK")
    suffix = f" {','.join(keys)}" if keys else ""
    nullable = ' "nullable"' if column.nullable and not column.primary_key else ""
    return f"        {_column_type(column)} {column.name}{suffix}{nullable}"


def _relationships(table: Table) -> list[str]:
    lines = []
    for foreign_key in sorted(table.foreign_keys, key=lambda fk: fk.parent.name):
        target = foreign_key.column.table.name
        cardinality = "|o--o{" if foreign_key.parent.nullable else "||--o{"
        lines.append(f'    {target} {cardinality} {table.name} : "{foreign_key.parent.name}"')
    return lines


def render() -> str:
    tables = sorted(metadata.sorted_tables, key=lambda table: table.name)
    lines = [HEADER, "```mermaid", "erDiagram"]
    for table in tables:
        lines.append(f"    {table.name} {{")
        lines.extend(_column_line(column) for column in table.columns)
        lines.append("    }")
    for table in tables:
        lines.extend(_relationships(table))
    lines.append("```")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when docs/erd.md is stale")
    args = parser.parse_args()
    content = render()
    if args.check:
        current = ERD_PATH.read_text() if ERD_PATH.exists() else ""
        if current != content:
            print("docs/erd.md is stale: run `make erd`", file=sys.stderr)
            return 1
        return 0
    ERD_PATH.write_text(content)
    print(f"wrote {ERD_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
