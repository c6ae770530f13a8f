"""Run every benchmark module (`bench_*.py`), or the ones named: python -m benchmarks auth."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from benchmarks.goals import Goal, print_goals


def main(argv: list[str]) -> int:
    available = sorted(
        module.name.removeprefix("bench_")
        for module in pkgutil.iter_modules([str(Path(__file__).parent)])
        if module.name.startswith("bench_")
    )
    chosen = argv or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        print(f"unknown benchmarks {unknown}; available: {available}", file=sys.stderr)
        return 2
    goals: list[Goal] = []
    for name in chosen:
        measured = importlib.import_module(f"benchmarks.bench_{name}").main()
        goals += measured or []
    print_goals(goals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
