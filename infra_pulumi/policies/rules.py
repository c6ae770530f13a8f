"""The stack invariants (docs/deploying.md#running-stacks) as plain functions: the policy pack
and the tests run exactly these.

Resource rules (`resource_rules.py`) take `(type, props, facts)` and return violation messages;
stack rules (`stack_rules.py`) take every resource of the stack. Properties are Pulumi's
camelCase names. Nothing here imports Pulumi, so the same code runs inside CrossGuard and over
mocked resources in tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from infra_pulumi.policies.model import (
    Resource,
    ResourceRule,
    StackFacts,
    StackRule,
    stack_from_urn,
)
from infra_pulumi.policies.resource_rules import RESOURCE_RULES
from infra_pulumi.policies.stack_rules import STACK_RULES

__all__ = [
    "RESOURCE_RULES",
    "STACK_RULES",
    "Resource",
    "ResourceRule",
    "StackFacts",
    "StackRule",
    "all_violations",
    "resource_violations",
    "stack_from_urn",
]


def resource_violations(
    resource: Resource, facts: StackFacts, rules: Iterable[ResourceRule] = RESOURCE_RULES
) -> list[tuple[str, str]]:
    return [
        (rule.name, f"{resource.name}: {message}")
        for rule in rules
        if resource.type in rule.types
        for message in rule.check(resource.type, resource.props, facts)
    ]


def all_violations(resources: Sequence[Resource], facts: StackFacts) -> list[tuple[str, str]]:
    """(rule name, message) for every violation in a stack."""
    found = [v for resource in resources for v in resource_violations(resource, facts)]
    for rule in STACK_RULES:
        found += [(rule.name, message) for message in rule.check(resources, facts)]
    return found
