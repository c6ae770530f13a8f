"""Adapts the plain rules of `rules.py` to pulumi-policy (every policy mandatory).

Kept apart from `__main__` (which starts the policy server) so tests can inspect the policies
and call their `validate` functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra_pulumi.policies.rules import (
    RESOURCE_RULES,
    STACK_RULES,
    Resource,
    ResourceRule,
    StackFacts,
    StackRule,
    stack_from_urn,
)

PACK_NAME = "slipway-invariants"

CONFIG_SCHEMA = PolicyConfigSchema(
    properties={
        "githubRepository": {"type": "string"},
        "githubFrontendRepository": {"type": "string"},
    },
)


def _facts(urn: str, config: Mapping[str, Any] | None) -> StackFacts:
    settings = config or {}
    return StackFacts.from_stack_name(
        stack_from_urn(urn),
        settings.get("githubRepository") or None,
        settings.get("githubFrontendRepository") or None,
    )


def _resource_policy(rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in rule.types:
            return
        facts = _facts(args.urn, args.get_config())
        for message in rule.check(args.resource_type, args.props, facts):
            report_violation(message, args.urn)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CONFIG_SCHEMA,
    )


def _stack_policy(rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [Resource(r.resource_type, r.name, r.props, r.urn) for r in args.resources]
        urn = resources[0].urn if resources else ""
        for message in rule.check(resources, _facts(urn, args.get_config())):
            report_violation(message, None)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CONFIG_SCHEMA,
    )


def policies() -> list[Policy]:
    return [
        *(_resource_policy(rule) for rule in RESOURCE_RULES),
        *(_stack_policy(rule) for rule in STACK_RULES),
    ]
