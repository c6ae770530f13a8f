"""Stack validation rules: relations between resources (a bucket and its policies, a security
group and the rules that target it, an instance and its role) and the stack's outputs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from infra_pulumi.policies.connection_budget import lambda_connection_budget
from infra_pulumi.policies.model import (
    BUCKET,
    BUCKET_POLICY,
    CACHE_POLICY,
    CACHEABLE_API_PATHS,
    CACHING_DISABLED_POLICY,
    CALLER_HEADERS,
    DATA_STORE_CLIENTS,
    DISTRIBUTION,
    ENCRYPTION,
    INGRESS_RULE,
    INSTANCE,
    INSTANCE_PROFILE,
    PUBLIC_ACCESS_BLOCK,
    PURPOSE_TAG,
    RDS,
    REPLICATION_GROUP,
    ROLE_ATTACHMENT,
    ROLE_TAG,
    SECURITY_GROUP,
    SG_RULE,
    SSM_CORE_POLICY,
    STACK,
    VERSIONING,
    Props,
    Resource,
    StackFacts,
    StackRule,
    _as_list,
    _document,
    _open_sources,
    _statements,
    _tags,
)
from infra_pulumi.policies.resource_rules import behaviours, public_access_block_complete


def _of_type(resources: Sequence[Resource], type_: str) -> list[Resource]:
    return [r for r in resources if r.type == type_]


def _bucket_keys(bucket: Resource) -> set[str]:
    return {str(v) for v in (bucket.props.get("bucket"), bucket.props.get("id")) if v}


def _covering(resources: Sequence[Resource], type_: str, bucket: Resource) -> list[Resource]:
    keys = _bucket_keys(bucket)
    return [r for r in _of_type(resources, type_) if str(r.props.get("bucket")) in keys]


def buckets_block_public_access(resources: Sequence[Resource], facts: StackFacts) -> list[str]:
    problems = []
    for bucket in _of_type(resources, BUCKET):
        blocks = _covering(resources, PUBLIC_ACCESS_BLOCK, bucket)
        if not any(not public_access_block_complete(b.type, b.props, facts) for b in blocks):
            problems.append(f"bucket {bucket.name} has no complete public-access block")
    return problems


def buckets_encrypted(resources: Sequence[Resource], _: StackFacts) -> list[str]:
    problems = []
    for bucket in _of_type(resources, BUCKET):
        configs = _covering(resources, ENCRYPTION, bucket)
        inline = bucket.props.get("serverSideEncryptionConfiguration")
        if not configs and not inline:
            problems.append(f"bucket {bucket.name} has no default encryption")
    return problems


def _denies_insecure_transport(document: Mapping[str, Any]) -> bool:
    for statement in _statements(document):
        condition = (statement.get("Condition") or {}).get("Bool") or {}
        if (
            statement.get("Effect") == "Deny"
            and str(condition.get("aws:SecureTransport")).lower() == "false"
            and statement.get("Principal") in ("*", {"AWS": "*"})
        ):
            return True
    return False


def buckets_tls_only(resources: Sequence[Resource], _: StackFacts) -> list[str]:
    problems = []
    for bucket in _of_type(resources, BUCKET):
        policies = _covering(resources, BUCKET_POLICY, bucket)
        if not any(_denies_insecure_transport(_document(p.props.get("policy"))) for p in policies):
            problems.append(f"bucket {bucket.name} has no TLS-only (aws:SecureTransport) policy")
    return problems


def _is_backup_bucket(bucket: Resource) -> bool:
    purpose = str(_tags(bucket.props).get(PURPOSE_TAG, ""))
    return purpose == "backups" or "backup" in str(bucket.props.get("bucket") or bucket.name)


def backups_versioned(resources: Sequence[Resource], _: StackFacts) -> list[str]:
    problems = []
    for bucket in filter(_is_backup_bucket, _of_type(resources, BUCKET)):
        versioning = _covering(resources, VERSIONING, bucket)
        enabled = any(
            (v.props.get("versioningConfiguration") or {}).get("status") == "Enabled"
            for v in versioning
        )
        if not enabled and (bucket.props.get("versioning") or {}).get("enabled") is not True:
            problems.append(f"backup bucket {bucket.name} must be versioned")
    return problems


def _group_roles(resources: Sequence[Resource]) -> dict[str, str]:
    """security group id -> its SlipwayRole tag."""
    return {
        str(g.props.get("id")): str(_tags(g.props).get(ROLE_TAG, ""))
        for g in _of_type(resources, SECURITY_GROUP)
        if g.props.get("id")
    }


def _ingress_rules(resources: Sequence[Resource]) -> list[Resource]:
    return [
        r
        for r in resources
        if r.type == INGRESS_RULE or (r.type == SG_RULE and r.props.get("type") == "ingress")
    ]


def _rule_target(rule: Resource) -> str:
    return str(rule.props.get("securityGroupId") or "")


def _rule_source(rule: Resource) -> str:
    return str(
        rule.props.get("referencedSecurityGroupId") or rule.props.get("sourceSecurityGroupId") or ""
    )


def data_stores_restricted(resources: Sequence[Resource], _: StackFacts) -> list[str]:
    """DB and cache groups admit only app/worker groups (and the bastion, for PostgreSQL)."""
    roles = _group_roles(resources)
    problems = []
    for rule in _ingress_rules(resources):
        target_role = roles.get(_rule_target(rule), "")
        allowed = DATA_STORE_CLIENTS.get(target_role)
        if allowed is None:
            continue
        source_role = roles.get(_rule_source(rule))
        if source_role not in allowed:
            problems.append(
                f"{rule.name}: the {target_role} group may only admit "
                f"{', '.join(sorted(allowed))} groups"
            )
    for group in _of_type(resources, SECURITY_GROUP):
        role = str(_tags(group.props).get(ROLE_TAG, ""))
        if role in DATA_STORE_CLIENTS and _as_list(group.props.get("ingress")):
            problems.append(f"{group.name}: data store groups must not have inline ingress rules")
    attachments = [
        (r, "database", _as_list(r.props.get("vpcSecurityGroupIds")))
        for r in _of_type(resources, RDS)
    ] + [
        (r, "cache", _as_list(r.props.get("securityGroupIds")))
        for r in _of_type(resources, REPLICATION_GROUP)
    ]
    for store, role, group_ids in attachments:
        if not group_ids or any(roles.get(str(g)) != role for g in group_ids):
            problems.append(f"{store.name} must sit only in {role} security groups")
    return problems


def open_ingress_only_on_public_entry(resources: Sequence[Resource], _: StackFacts) -> list[str]:
    roles = _group_roles(resources)
    return [
        f"{rule.name}: ingress from anywhere is only allowed on the public-entry group"
        for rule in _ingress_rules(resources)
        if _open_sources(rule.props) and roles.get(_rule_target(rule)) != "public-entry"
    ]


def ec2_reached_through_ssm(resources: Sequence[Resource], _: StackFacts) -> list[str]:
    profiles = {
        str(p.props.get("name")): str(p.props.get("role"))
        for p in _of_type(resources, INSTANCE_PROFILE)
    }
    ssm_roles = {
        str(a.props.get("role"))
        for a in _of_type(resources, ROLE_ATTACHMENT)
        if a.props.get("policyArn") == SSM_CORE_POLICY
    }
    targets = {_rule_target(rule) for rule in _ingress_rules(resources)}
    problems = []
    for instance in _of_type(resources, INSTANCE):
        role = profiles.get(str(instance.props.get("iamInstanceProfile")))
        if role not in ssm_roles:
            problems.append(f"{instance.name}: its role needs AmazonSSMManagedInstanceCore")
        groups = {str(g) for g in _as_list(instance.props.get("vpcSecurityGroupIds"))}
        if groups & targets:
            problems.append(f"{instance.name}: SSM-only instances accept no inbound connections")
    return problems


def _caller_in_cache_key(policy: Props) -> list[str]:
    """What of the caller a cache policy keys on (and so forwards): cookies, Authorization."""
    parameters = policy.get("parametersInCacheKeyAndForwardedToOrigin") or {}
    found = []
    if (parameters.get("cookiesConfig") or {}).get("cookieBehavior") not in (None, "none"):
        found.append("cookies")
    headers = (parameters.get("headersConfig") or {}).get("headers") or {}
    found += sorted(str(h) for h in _as_list(headers.get("items")) if h.lower() in CALLER_HEADERS)
    return found


def api_caching_public_only(resources: Sequence[Resource], _: StackFacts) -> list[str]:
    """CloudFront caches no API answer but the public documents, and those on nothing of the
    caller: a cached answer that depended on who asked would be served to everyone."""
    policies = {str(p.props.get("id")): p.props for p in _of_type(resources, CACHE_POLICY)}
    problems = []
    for distribution in _of_type(resources, DISTRIBUTION):
        # S3 origins serve static assets; any custom origin is the API.
        api_origins = {
            str(origin.get("originId"))
            for origin in _as_list(distribution.props.get("origins"))
            if isinstance(origin, Mapping) and origin.get("customOriginConfig")
        }
        for behaviour in behaviours(distribution.props):
            policy_id = str(behaviour.get("cachePolicyId") or "")
            if (
                str(behaviour.get("targetOriginId")) not in api_origins
                or policy_id == CACHING_DISABLED_POLICY
            ):
                continue
            path = str(behaviour.get("pathPattern") or "default")
            where = f"{distribution.name}: API behaviour {path}"
            policy = policies.get(policy_id)
            if path not in CACHEABLE_API_PATHS:
                problems.append(
                    f"{where} must use CachingDisabled: only "
                    f"{', '.join(sorted(CACHEABLE_API_PATHS))} may be cached"
                )
            elif policy is None:
                problems.append(f"{where} must use a cache policy of this stack (none found)")
            elif keyed := _caller_in_cache_key(policy):
                problems.append(f"{where} caches per caller ({', '.join(keyed)})")
    return problems


_SECRET_VALUE = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\b(sk|rk)_(live|test)_[0-9A-Za-z]{8,}|\bwhsec_[0-9A-Za-z]{8,}|\bglsa_[0-9A-Za-z_]{8,}"
    r"|hooks\.slack\.com/services/|\bAKIA[0-9A-Z]{16}\b|rediss?://[^@/\s]*:[^@/\s]+@)"
)
_SECRET_KEY_NAME = re.compile(r"(password|secret|token|private|credential|api_?key)", re.IGNORECASE)
_SAFE_KEY_NAME = re.compile(r"(arn|url|id|name|domain|endpoint)$", re.IGNORECASE)


def outputs_without_secrets(outputs: Mapping[str, Any]) -> list[str]:
    """Stack outputs must not look like secrets (by name or by value)."""
    problems = []
    for key, value in outputs.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if _SECRET_VALUE.search(text):
            problems.append(f"stack output {key} contains a secret value")
        elif _SECRET_KEY_NAME.search(key) and not _SAFE_KEY_NAME.search(key):
            problems.append(f"stack output {key} is named like a secret")
    return problems


def stack_outputs_clean(resources: Sequence[Resource], _: StackFacts) -> list[str]:
    problems = []
    for stack in _of_type(resources, STACK):
        outputs = stack.props.get("outputs", stack.props)
        problems += outputs_without_secrets(outputs if isinstance(outputs, Mapping) else {})
    return problems


STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "s3-buckets-block-public-access",
        "every bucket has all four public-access blocks",
        buckets_block_public_access,
    ),
    StackRule("s3-buckets-encrypted", "every bucket has default encryption", buckets_encrypted),
    StackRule("s3-buckets-tls-only", "every bucket policy denies non-TLS access", buckets_tls_only),
    StackRule("s3-backups-versioned", "backup buckets are versioned", backups_versioned),
    StackRule(
        "sg-data-stores-restricted",
        "DB and cache are reachable only from app/worker groups",
        data_stores_restricted,
    ),
    StackRule(
        "sg-open-ingress-public-entry-only",
        "ingress from anywhere only on the public entry",
        open_ingress_only_on_public_entry,
    ),
    StackRule(
        "ec2-reached-through-ssm",
        "EC2 instances are reached through SSM only",
        ec2_reached_through_ssm,
    ),
    StackRule(
        "cloudfront-api-caching-public-only",
        "CloudFront caches only the API's public documents, keyed on nothing of the caller",
        api_caching_public_only,
    ),
    StackRule(
        "lambda-database-connection-budget",
        "a Lambda API's instances x connections fit in its database's max_connections",
        lambda_connection_budget,
    ),
    StackRule("stack-outputs-no-secrets", "no secret in a stack output", stack_outputs_clean),
)
