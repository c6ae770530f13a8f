"""Write the Grafana dashboards as JSON into dashboards/generated/ (`make dashboards`).

The JSON is committed, and a test regenerates it in memory and compares, so what Pulumi
provisions into Grafana is always what this code says. `--check` only compares.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import api_overview, auth, ops, payments, rate_limiting

GENERATED = Path(__file__).resolve().parent / "generated"

# slug -> builder; the file is dashboards/generated/<slug>.json
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "api-overview": api_overview.build,
    "rate-limiting": rate_limiting.build,
    "auth": auth.build,
    "payments": payments.build,
    "ops": ops.build,
}


def render(board: Dashboard) -> str:
    return json.dumps(board.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{slug}.json": render(build()) for slug, build in DASHBOARDS.items()}


def stale_files(directory: Path = GENERATED) -> list[str]:
    """Files in `directory` that differ from, are missing from, or are extra to `rendered()`."""
    expected = rendered()
    present = {path.name for path in directory.glob("*.json")}
    stale = [
        name
        for name, text in expected.items()
        if name not in present or (directory / name).read_text(encoding="utf-8") != text
    ]
    return sorted([*stale, *(present - expected.keys())])


def write(directory: Path = GENERATED) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    expected = rendered()
    for path in directory.glob("*.json"):
        if path.name not in expected:
            path.unlink()
    for name, text in expected.items():
        (directory / name).write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the JSON is out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"out of date: dashboards/generated/{name} (run `make dashboards`)")
        return 1 if stale else 0
    write()
    for name in sorted(rendered()):
        print(f"wrote dashboards/generated/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
