"""Reading what the flows recorded in ops_flow_runs."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import create_engine, text


def flow_runs(database_url: str, flow: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url.replace("sqlite+aiosqlite", "sqlite"))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT result, measurements FROM ops_flow_runs WHERE flow = :flow "
                    "ORDER BY finished_at"
                ),
                {"flow": flow},
            )
            return [
                {
                    "result": row.result,
                    "measurements": row.measurements
                    if isinstance(row.measurements, dict)
                    else json.loads(row.measurements),
                }
                for row in rows
            ]
    finally:
        engine.dispose()
