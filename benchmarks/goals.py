"""The performance goals the benchmarks report against, printed together by `make bench`.

A benchmark module's `main()` may return the goals it measured; `python -m benchmarks`
prints every measured ratio beside its goal at the end. Goals are ratios measured side by
side in one run (never absolute times), so they hold on any machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    name: str
    measured: float
    target: float
    # False: the ratio must stay at or below the target (a cost, such as cold-start time).
    at_least: bool = True

    @property
    def met(self) -> bool:
        if self.at_least:
            return self.measured >= self.target
        return self.measured <= self.target


def print_goals(goals: Iterable[Goal]) -> None:
    rows = list(goals)
    if not rows:
        return
    print("\nGoals: each ratio measured side by side in one run")
    print(f"{'goal':<58} {'measured':>9} {'target':>9}  met")
    for goal in rows:
        bound = ">=" if goal.at_least else "<="
        print(
            f"{goal.name:<58} {goal.measured:>8.3f}x {bound}{goal.target:>6.3f}x  "
            f"{'yes' if goal.met else 'NO'}"
        )
