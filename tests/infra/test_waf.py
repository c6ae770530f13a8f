"""The prod web ACL, evaluated the way AWS WAF evaluates it, for the requests that matter.

A small evaluator walks the mocked rules in priority order: a managed rule group labels the
request with each of its matching rules and blocks unless that rule's action is overridden
to count; our own rules see the labels added before them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from infra_pulumi.plan import Plan
from tests.infra.conftest import one

WAF = "aws:wafv2/webAcl:WebAcl"
COMMON = "AWSManagedRulesCommonRuleSet"
BODY_LIMIT = 8 * 1024


@dataclass
class Request:
    path: str
    body_bytes: int
    labels: set[str] = field(default_factory=set)


def _common_rule_set_matches(request: Request) -> dict[str, str]:
    """The common rule set's rules this request triggers -> the label each adds."""
    if request.body_bytes > BODY_LIMIT:
        return {"SizeRestrictions_BODY": "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"}
    return {}


def _matches(statement: dict[str, Any], request: Request) -> bool:
    if "andStatement" in statement:
        return all(_matches(s, request) for s in statement["andStatement"]["statements"])
    if "orStatement" in statement:
        return any(_matches(s, request) for s in statement["orStatement"]["statements"])
    if "notStatement" in statement:
        return not _matches(statement["notStatement"]["statement"], request)
    if "labelMatchStatement" in statement:
        label = statement["labelMatchStatement"]
        assert label["scope"] == "LABEL"
        return label["key"] in request.labels
    if "byteMatchStatement" in statement:
        match = statement["byteMatchStatement"]
        assert match["fieldToMatch"] == {"uriPath": {}}
        constraint, value = match["positionalConstraint"], match["searchString"]
        assert constraint == "STARTS_WITH", constraint
        return request.path.startswith(value)
    if "rateBasedStatement" in statement:
        return False  # one request from one address
    raise AssertionError(f"statement the evaluator does not know: {sorted(statement)}")


def blocked_by(acl: dict[str, Any], request: Request) -> str | None:
    """The name of the rule that blocks the request, or None when it reaches the origin."""
    for rule in sorted(acl["rules"], key=lambda r: r["priority"]):
        statement = rule["statement"]
        managed = statement.get("managedRuleGroupStatement")
        if managed is not None:
            if managed["name"] != COMMON:
                continue  # the other managed groups do not look at body sizes
            counted = {
                o["name"]
                for o in managed.get("ruleActionOverrides") or []
                if "count" in o["actionToUse"]
            }
            for name, label in _common_rule_set_matches(request).items():
                request.labels.add(label)
                if name not in counted and "none" in rule["overrideAction"]:
                    return f"{rule['name']}:{name}"
            continue
        if _matches(statement, request) and "block" in rule["action"]:
            return str(rule["name"])
    assert "allow" in acl["defaultAction"]
    return None


def test_large_stripe_events_reach_the_webhook(prod: Plan) -> None:
    acl = one(prod, WAF).props
    assert blocked_by(acl, Request("/v1/webhooks/stripe", 60_000)) is None


def test_large_bodies_elsewhere_are_still_blocked(prod: Plan) -> None:
    acl = one(prod, WAF).props
    assert blocked_by(acl, Request("/v1/payments", 60_000)) is not None
    assert blocked_by(acl, Request("/v1/webhooksx", 60_000)) is not None
    assert blocked_by(acl, Request("/v1/payments", 2_000)) is None
