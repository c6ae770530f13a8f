"""The prod web ACL, evaluated the way AWS WAF evaluates it, for the requests that matter.

A small evaluator walks the mocked rules in priority order: a managed rule group labels the
request with each of its matching rules and blocks unless that rule's action is overridden
to count; our own rules see the labels added before them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from infra_pulumi.plan import Plan
from tests.infra.conftest import collect, of_type, one, run_offline

WAF = "aws:wafv2/webAcl:WebAcl"
IP_SET = "aws:wafv2/ipSet:IpSet"
IpSets = dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]]
COMMON = "AWSManagedRulesCommonRuleSet"
BODY_LIMIT = 8 * 1024


@dataclass
class Request:
    path: str
    body_bytes: int
    ip: str = "198.51.100.20"
    labels: set[str] = field(default_factory=set)


def _common_rule_set_matches(request: Request) -> dict[str, str]:
    """The common rule set's rules this request triggers -> the label each adds."""
    if request.body_bytes > BODY_LIMIT:
        return {"SizeRestrictions_BODY": "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"}
    return {}


def _matches(statement: dict[str, Any], request: Request, ip_sets: IpSets) -> bool:
    if "andStatement" in statement:
        return all(_matches(s, request, ip_sets) for s in statement["andStatement"]["statements"])
    if "orStatement" in statement:
        return any(_matches(s, request, ip_sets) for s in statement["orStatement"]["statements"])
    if "notStatement" in statement:
        return not _matches(statement["notStatement"]["statement"], request, ip_sets)
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
    if "ipSetReferenceStatement" in statement:
        networks = ip_sets[statement["ipSetReferenceStatement"]["arn"]]
        return any(ipaddress.ip_address(request.ip) in network for network in networks)
    if "rateBasedStatement" in statement:
        return False  # one request from one address
    raise AssertionError(f"statement the evaluator does not know: {sorted(statement)}")


def blocked_by(acl: dict[str, Any], request: Request, ip_sets: IpSets | None = None) -> str | None:
    """The name of the rule that blocks the request, or None when it reaches the origin."""
    ip_sets = ip_sets or {}
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
        if _matches(statement, request, ip_sets):
            if "allow" in rule["action"]:
                return None  # an allow ends the evaluation: no later rule sees the request
            if "block" in rule["action"]:
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


def _ip_sets(plan: Plan) -> IpSets:
    return {
        r.props["arn"]: [ipaddress.ip_network(a) for a in r.props["addresses"]]
        for r in of_type(plan, IP_SET)
    }


def test_no_address_is_let_through_unless_configured(prod: Plan) -> None:
    assert of_type(prod, IP_SET) == []
    assert "allowed-testers" not in [rule["name"] for rule in one(prod, WAF).props["rules"]]


def test_a_penetration_testers_addresses_pass_every_rule() -> None:
    allowed = '["203.0.113.0/28", "2001:db8:1::/48"]'
    plan = collect(run_offline("prod", f"slipway:wafAllowedCidrs={allowed}"))
    acl, ip_sets = one(plan, WAF).props, _ip_sets(plan)
    large = 60_000  # blocked for everyone else outside the webhook

    for tester in ("203.0.113.9", "2001:db8:1::7"):
        assert blocked_by(acl, Request("/v1/payments", large, ip=tester), ip_sets) is None
    assert blocked_by(acl, Request("/v1/payments", large, ip="203.0.113.99"), ip_sets)
    assert blocked_by(acl, Request("/v1/payments", large, ip="2001:db8:2::7"), ip_sets)
