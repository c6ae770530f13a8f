"""Each stack's committed picture is what `make diagrams` draws from today's program."""

from __future__ import annotations

import pytest

from infra_pulumi.plan import Plan
from scripts.diagrams import ARCHITECTURE, ROOT, stack_graph, svg
from tests.infra.conftest import STACKS


def test_every_stack_file_is_planned_and_drawn() -> None:
    assert {p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml")} == set(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_picture_is_fresh(plans: dict[str, Plan], stack: str) -> None:
    path = ARCHITECTURE / f"{stack}.svg"
    assert path.read_text(encoding="utf-8") == svg(stack_graph(plans[stack])), (
        f"{path.relative_to(ROOT)} is stale: run `make diagrams`"
    )
