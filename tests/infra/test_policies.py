"""The policy pack's own rule functions over both mocked stacks: zero violations, and for
every rule a one-resource mutation that the rule catches."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from infra_pulumi.plan import Plan
from infra_pulumi.policies import model as m
from infra_pulumi.policies import pack
from infra_pulumi.policies import rules as r
from infra_pulumi.policies.connection_budget import PARAMETER_GROUP
from infra_pulumi.policies.rules import Resource, StackFacts, all_violations

Props = dict[str, Any]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_has_zero_policy_violations(plans: dict[str, Plan], stack: str) -> None:
    assert plans[stack].violations() == []


@dataclass(frozen=True)
class Case:
    rule: str
    stack: str
    type: str
    name: str | None
    mutate: Callable[[Props], None]
    # stack-level mutations act on the whole list (drop or add resources)
    reshape: Callable[[list[Resource]], None] | None = None


def setter(*path: str | int, value: Any) -> Callable[[Props], None]:
    def mutate(props: Props) -> None:
        target: Any = props
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def edit_json(key: str, edit: Callable[[Any], None]) -> Callable[[Props], None]:
    def mutate(props: Props) -> None:
        document = json.loads(props[key])
        edit(document)
        props[key] = json.dumps(document)

    return mutate


def drop(type_: str, name: str) -> Callable[[list[Resource]], None]:
    def reshape(resources: list[Resource]) -> None:
        resources[:] = [x for x in resources if not (x.type == type_ and x.name == name)]

    return reshape


def add_ingress(target_group: str, **props: Any) -> Callable[[list[Resource]], None]:
    def reshape(resources: list[Resource]) -> None:
        rule = {
            "securityGroupId": f"{target_group}-id",
            "description": "test rule",
            "ipProtocol": "tcp",
            **props,
        }
        resources.append(Resource(m.INGRESS_RULE, "injected-rule", rule))

    return reshape


def _cache_api_path(path: str) -> Callable[[Props], None]:
    """Points the API behaviour for `path` at the public documents' cache policy."""

    def mutate(props: Props) -> None:
        (behaviour,) = [b for b in props["orderedCacheBehaviors"] if b["pathPattern"] == path]
        behaviour["cachePolicyId"] = "cdn-public-documents-id"

    return mutate


def _cache_key_header(header: str) -> Callable[[Props], None]:
    def mutate(props: Props) -> None:
        key = props["parametersInCacheKeyAndForwardedToOrigin"]
        key["headersConfig"]["headers"]["items"].append(header)

    return mutate


def nothing(_: Props) -> None:
    return None


def _set_output(name: str, value: str) -> Callable[[Props], None]:
    def mutate(props: Props) -> None:
        props["outputs"][name] = value

    return mutate


def _add_env(name: str) -> Callable[[Props], None]:
    def edit(definitions: Any) -> None:
        definitions[0]["environment"].append({"name": name, "value": "plain"})

    return edit_json("containerDefinitions", edit)


def _trust(condition: str, key: str, value: str) -> Callable[[Props], None]:
    def edit(document: Any) -> None:
        conditions = document["Statement"][0]["Condition"]
        conditions.setdefault(condition, {})[f"token.actions.githubusercontent.com:{key}"] = value
        if condition == "StringLike":
            del conditions["StringEquals"][f"token.actions.githubusercontent.com:{key}"]

    return edit_json("assumeRolePolicy", edit)


def _ses_resource(resource: str) -> Callable[[Props], None]:
    def edit(document: Any) -> None:
        document["Statement"][0]["Resource"] = resource

    return edit_json("policy", edit)


def _no_tls_statement(props: Props) -> None:
    document = json.loads(props["policy"])
    document["Statement"] = [s for s in document["Statement"] if s["Effect"] != "Deny"]
    props["policy"] = json.dumps(document)


RDS = (m.RDS, "database-postgres")
CDN = (m.DISTRIBUTION, "cdn-distribution")
DOCUMENTS_CACHE = (m.CACHE_POLICY, "cdn-public-documents")
API_FUNCTION = (m.LAMBDA, "compute-api")
STACK_OUTPUTS = (m.STACK, None)

CASES = [
    Case("rds-private", "prod", *RDS, setter("publiclyAccessible", value=True)),
    Case("rds-encrypted", "staging", *RDS, setter("storageEncrypted", value=False)),
    Case(
        "rds-managed-master-password",
        "staging",
        *RDS,
        setter("manageMasterUserPassword", value=False),
    ),
    Case("rds-managed-master-password", "prod", *RDS, setter("password", value="hunter2hunter2")),
    Case("rds-backup-retention", "staging", *RDS, setter("backupRetentionPeriod", value=5)),
    Case("rds-backup-retention", "prod", *RDS, setter("backupRetentionPeriod", value=14)),
    Case("rds-prod-multi-az", "prod", *RDS, setter("multiAz", value=False)),
    Case("rds-prod-deletion-protection", "prod", *RDS, setter("deletionProtection", value=False)),
    Case(
        "s3-public-access-block-complete",
        "staging",
        m.PUBLIC_ACCESS_BLOCK,
        "storage-backups",
        setter("restrictPublicBuckets", value=False),
    ),
    Case(
        "sg-no-open-ingress",
        "prod",
        m.INGRESS_RULE,
        "security-public-entry-in-https-from-the-internet-to-the",
        setter("fromPort", value=22),
    ),
    Case(
        "sg-rules-described",
        "staging",
        m.EGRESS_RULE,
        "security-app-out-postgresql",
        setter("description", value=""),
    ),
    Case(
        "sg-rules-described",
        "prod",
        m.SECURITY_GROUP,
        "security-cache",
        setter("description", value=""),
    ),
    Case(
        "cloudfront-https-only",
        "prod",
        *CDN,
        setter("defaultCacheBehavior", "viewerProtocolPolicy", value="allow-all"),
    ),
    Case(
        "cloudfront-https-only",
        "staging",
        *CDN,
        setter("origins", 1, "customOriginConfig", "originProtocolPolicy", value="http-only"),
    ),
    Case(
        "cloudfront-tls-1-2",
        "prod",
        *CDN,
        setter("viewerCertificate", "minimumProtocolVersion", value="TLSv1_2016"),
    ),
    Case(
        "cloudfront-tls-1-2",
        "staging",
        *CDN,
        setter("viewerCertificate", value={"cloudfrontDefaultCertificate": True}),
    ),
    Case(
        "cloudfront-s3-origin-oac",
        "prod",
        *CDN,
        setter("origins", 0, "originAccessControlId", value=""),
    ),
    Case("cloudfront-prod-waf", "prod", *CDN, setter("webAclId", value=None)),
    Case("cloudfront-api-caching-public-only", "prod", *CDN, _cache_api_path("/v1/*")),
    Case("cloudfront-api-caching-public-only", "dev", *CDN, _cache_api_path("/.well-known/*")),
    Case(
        "cloudfront-api-caching-public-only",
        "staging",
        *DOCUMENTS_CACHE,
        _cache_key_header("Authorization"),
    ),
    Case(
        "cloudfront-api-caching-public-only",
        "prod",
        *DOCUMENTS_CACHE,
        setter(
            "parametersInCacheKeyAndForwardedToOrigin",
            "cookiesConfig",
            value={"cookieBehavior": "all"},
        ),
    ),
    Case(
        "elasticache-encryption",
        "prod",
        m.REPLICATION_GROUP,
        "cache-valkey",
        setter("transitEncryptionEnabled", value=False),
    ),
    Case(
        "elasticache-encryption",
        "staging",
        m.REPLICATION_GROUP,
        "cache-valkey",
        setter("atRestEncryptionEnabled", value=False),
    ),
    Case(
        "ecr-scan-on-push",
        "prod",
        m.ECR,
        "compute-api",
        setter("imageScanningConfiguration", "scanOnPush", value=False),
    ),
    Case(
        "ecr-immutable-tags",
        "staging",
        m.ECR,
        "flows-flows",
        setter("imageTagMutability", value="MUTABLE"),
    ),
    Case(
        "ec2-imdsv2",
        "prod",
        m.INSTANCE,
        "bastion-instance",
        setter("metadataOptions", "httpTokens", value="optional"),
    ),
    Case(
        "ec2-no-public-ip",
        "staging",
        m.INSTANCE,
        "bastion-instance",
        setter("associatePublicIpAddress", value=True),
    ),
    Case(
        "ec2-ssm-only", "prod", m.INSTANCE, "bastion-instance", setter("keyName", value="ops-key")
    ),
    Case(
        "github-oidc-trust-pinned",
        "prod",
        m.ROLE,
        "ci-deploy",
        _trust("StringLike", "sub", "repo:slipway-dev/slipway:*"),
    ),
    Case(
        "github-oidc-trust-pinned",
        "staging",
        m.ROLE,
        "ci-deploy",
        _trust("StringEquals", "aud", "sts.example.com"),
    ),
    Case(
        "no-plaintext-secret-env",
        "dev",
        m.LAMBDA,
        "compute-api",
        setter("environment", "variables", "STRIPE_SECRET_KEY", value="sk_live_plain"),
    ),
    Case(
        "no-plaintext-secret-env",
        "prod",
        m.TASK_DEFINITION,
        "compute-api",
        _add_env("JWT_PRIVATE_KEYS"),
    ),
    Case(
        "s3-buckets-block-public-access",
        "prod",
        m.BUCKET,
        "storage-static",
        nothing,
        reshape=drop(m.PUBLIC_ACCESS_BLOCK, "storage-static"),
    ),
    Case(
        "s3-buckets-encrypted",
        "staging",
        m.BUCKET,
        "storage-backups",
        nothing,
        reshape=drop(m.ENCRYPTION, "storage-backups"),
    ),
    Case("s3-buckets-tls-only", "prod", m.BUCKET_POLICY, "storage-access-logs", _no_tls_statement),
    Case(
        "s3-buckets-tls-only",
        "staging",
        m.BUCKET,
        "storage-static",
        nothing,
        reshape=drop(m.BUCKET_POLICY, "storage-static"),
    ),
    Case(
        "s3-backups-versioned",
        "prod",
        m.VERSIONING,
        "storage-backups",
        setter("versioningConfiguration", "status", value="Suspended"),
    ),
    Case(
        "sg-data-stores-restricted",
        "prod",
        m.INGRESS_RULE,
        "security-database-in-postgresql-from-api-tasks",
        setter("referencedSecurityGroupId", value="security-api-entry-id"),
    ),
    Case(
        "sg-data-stores-restricted",
        "staging",
        m.INGRESS_RULE,
        "security-cache-in-redis-from-api-tasks",
        setter("referencedSecurityGroupId", value="security-bastion-id"),
    ),
    Case(
        "sg-data-stores-restricted",
        "prod",
        *RDS,
        setter("vpcSecurityGroupIds", value=["security-database-id", "security-app-id"]),
    ),
    Case(
        "sg-open-ingress-public-entry-only",
        "staging",
        m.SECURITY_GROUP,
        "security-app",
        nothing,
        reshape=add_ingress("security-app", cidrIpv4="0.0.0.0/0", fromPort=443, toPort=443),
    ),
    Case(
        "ec2-reached-through-ssm",
        "prod",
        m.INSTANCE,
        "bastion-instance",
        nothing,
        reshape=drop(m.ROLE_ATTACHMENT, "bastion-ssm"),
    ),
    Case(
        "ec2-reached-through-ssm",
        "staging",
        m.INSTANCE,
        "bastion-instance",
        nothing,
        reshape=add_ingress("security-bastion", cidrIpv4="10.0.0.0/8", fromPort=22, toPort=22),
    ),
    Case(
        "stack-outputs-no-secrets",
        "prod",
        *STACK_OUTPUTS,
        _set_output("redisConnection", "rediss://:s3cret-token@cache.internal:6379/0"),
    ),
    Case(
        "stack-outputs-no-secrets",
        "staging",
        *STACK_OUTPUTS,
        _set_output("stripeKey", "sk_live_51Habcdefghijklmnop"),
    ),
    Case(
        "stack-outputs-no-secrets", "prod", *STACK_OUTPUTS, _set_output("dbPassword", "plain words")
    ),
    Case(
        "lambda-database-connection-budget",
        "dev",
        *API_FUNCTION,
        setter("reservedConcurrentExecutions", value=30),
    ),
    Case(
        "lambda-database-connection-budget",
        "dev",
        *API_FUNCTION,
        setter("reservedConcurrentExecutions", value=None),
    ),
    Case(
        "lambda-database-connection-budget",
        "dev",
        *API_FUNCTION,
        setter("environment", "variables", "DATABASE_MAX_OVERFLOW", value="10"),
    ),
    Case(
        "lambda-database-connection-budget",
        "dev",
        PARAMETER_GROUP,
        "database-params",
        setter("parameters", value=[{"name": "max_connections", "value": "40"}]),
    ),
    Case(
        "lambda-database-connection-budget",
        "dev",
        *RDS,
        setter("instanceClass", value="db.x2g.large"),
    ),
    Case("ses-send-scoped", "prod", m.ROLE_POLICY, "compute-api-task-email", _ses_resource("*")),
    Case(
        "ses-send-scoped",
        "dev",
        m.ROLE_POLICY,
        "compute-lambda-email",
        _ses_resource("arn:aws:ses:eu-west-1:123456789012:identity/*"),
    ),
]


def _case_id(case: Case) -> str:
    return f"{case.rule}-{case.stack}-{case.name or 'stack'}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_rule_catches_its_counterexample(plans: dict[str, Plan], case: Case) -> None:
    resources = copy.deepcopy(plans[case.stack].policy_resources())
    targets = [
        x for x in resources if x.type == case.type and (case.name is None or x.name == case.name)
    ]
    assert len(targets) == 1, f"{case.type} {case.name} not found once"
    case.mutate(dict_props(targets[0]))
    if case.reshape:
        case.reshape(resources)
    found = all_violations(resources, StackFacts.from_stack_name(case.stack))
    assert case.rule in {rule for rule, _ in found}, found


def dict_props(resource: Resource) -> Props:
    assert isinstance(resource.props, dict)
    return resource.props


def test_every_rule_has_a_counterexample() -> None:
    rules = {rule.name for rule in r.RESOURCE_RULES} | {rule.name for rule in r.STACK_RULES}
    assert {case.rule for case in CASES} == rules


def test_staging_is_not_held_to_prod_only_rules(staging: Plan) -> None:
    """The same resources judged as prod break exactly the prod-only rules."""
    as_prod = all_violations(staging.policy_resources(), StackFacts.from_stack_name("prod"))
    assert {rule for rule, _ in as_prod} == {
        "rds-backup-retention",
        "rds-prod-multi-az",
        "rds-prod-deletion-protection",
        "cloudfront-prod-waf",
    }


def test_deploy_role_can_be_pinned_to_one_repository(prod: Plan) -> None:
    facts = StackFacts(is_prod=True, github_repository="someone-else/fork")
    found = all_violations(prod.policy_resources(), facts)
    assert {rule for rule, _ in found} == {"github-oidc-trust-pinned"}
    assert len(found) == 2  # the deploy and static-publish roles (previews have no role)


def test_the_front_end_repository_is_trusted_only_when_named(prod: Plan) -> None:
    backend_only = StackFacts(is_prod=True, github_repository="slipway-dev/slipway")
    found = all_violations(prod.policy_resources(), backend_only)
    assert [message for _, message in found] == [
        "ci-static: GitHub OIDC trust names slipway-dev/slipway-web, not slipway-dev/slipway"
    ]
    both = StackFacts(
        is_prod=True,
        github_repository="slipway-dev/slipway",
        github_frontend_repository="slipway-dev/slipway-web",
    )
    assert all_violations(prod.policy_resources(), both) == []


class _Args:
    """What pulumi-policy hands a policy's validate function."""

    def __init__(self, resource: Resource, resources: list[Resource]) -> None:
        self.resource_type = resource.type
        self.props = resource.props
        self.urn = resource.urn
        self.name = resource.name
        self.resources = [_PolicyResource(x) for x in resources]

    def get_config(self) -> dict[str, Any]:
        return {}


class _PolicyResource:
    def __init__(self, resource: Resource) -> None:
        self.resource_type = resource.type
        self.props = resource.props
        self.urn = resource.urn
        self.name = resource.name


def test_pack_enforces_every_rule_as_mandatory_through_the_same_functions(prod: Plan) -> None:
    policies = pack.policies()
    names = {rule.name for rule in r.RESOURCE_RULES} | {rule.name for rule in r.STACK_RULES}
    assert {p.name for p in policies} == names
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in policies)

    resources = copy.deepcopy(prod.policy_resources())
    database = next(x for x in resources if x.type == m.RDS)
    dict_props(database)["multiAz"] = False
    reported: list[tuple[str, str]] = []
    for policy in policies:

        def report(message: str, urn: str | None = None, name: str = policy.name) -> None:
            reported.append((name, message))

        if isinstance(policy, ResourceValidationPolicy):
            for resource in resources:
                policy.validate(_Args(resource, resources), report)  # type: ignore[arg-type]
        elif isinstance(policy, StackValidationPolicy):
            policy.validate(_Args(resources[0], resources), report)  # type: ignore[arg-type]
    assert [name for name, _ in reported] == ["rds-prod-multi-az"]
