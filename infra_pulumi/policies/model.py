"""The policy rules' vocabulary: resource types, stack facts, and property helpers.

Resource rules take `(type, props, facts)` and return violation messages; stack rules take
every resource of the stack. Properties are Pulumi's camelCase names. Nothing here imports
Pulumi, so the same code runs inside CrossGuard and over mocked resources in tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROD_STACKS = frozenset({"prod", "production"})
ROLE_TAG = "SlipwayRole"
PURPOSE_TAG = "SlipwayPurpose"
OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})
HTTPS = 443
GITHUB_ISSUER = "token.actions.githubusercontent.com"
SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
# Which security-group roles may reach a data store (the bastion only for PostgreSQL).
DATA_STORE_CLIENTS = {
    "database": frozenset({"app", "worker", "bastion"}),
    "cache": frozenset({"app", "worker"}),
}
# CloudFront's managed CachingDisabled policy: what every API path uses but the documents below.
CACHING_DISABLED_POLICY = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
# The only API paths CloudFront may cache: public documents, the same bytes for every caller.
# Adding one is a security decision: a cached answer that depends on the caller leaks it.
CACHEABLE_API_PATHS = frozenset({"/v1/prices", "/.well-known/jwks.json"})
# Request parts that identify a caller; a shared cache must not key on (or forward) them.
CALLER_HEADERS = frozenset({"authorization", "cookie"})

RDS = "aws:rds/instance:Instance"
BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS_RULE = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
CACHE_POLICY = "aws:cloudfront/cachePolicy:CachePolicy"
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_CLUSTER = "aws:elasticache/cluster:Cluster"
ECR = "aws:ecr/repository:Repository"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ROLE = "aws:iam/role:Role"
INSTANCE_PROFILE = "aws:iam/instanceProfile:InstanceProfile"
ROLE_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_POLICY = "aws:iam/policy:Policy"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
LAMBDA = "aws:lambda/function:Function"
STACK = "pulumi:pulumi:Stack"

Props = Mapping[str, Any]


@dataclass(frozen=True)
class StackFacts:
    """What a rule may know about the stack besides its resources."""

    is_prod: bool
    # When set (policy config `githubRepository`), deploy-role trust must name this repository,
    # or the front-end repository (`githubFrontendRepository`) whose workflow publishes assets.
    github_repository: str | None = None
    github_frontend_repository: str | None = None

    @staticmethod
    def from_stack_name(
        stack: str,
        github_repository: str | None = None,
        github_frontend_repository: str | None = None,
    ) -> StackFacts:
        return StackFacts(
            is_prod=stack in PROD_STACKS,
            github_repository=github_repository,
            github_frontend_repository=github_frontend_repository,
        )


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: Props
    urn: str = ""


ResourceCheck = Callable[[str, Props, StackFacts], list[str]]
StackCheck = Callable[[Sequence[Resource], StackFacts], list[str]]


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    types: frozenset[str]
    check: ResourceCheck


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: StackCheck


def stack_from_urn(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::...` -> `<stack>`."""
    return urn.split("::", 1)[0].rsplit(":", 1)[-1] if urn.startswith("urn:pulumi:") else ""


def _true(props: Props, key: str) -> bool:
    return props.get(key) is True or str(props.get(key)).lower() == "true"


def _tags(props: Props) -> Mapping[str, Any]:
    tags = props.get("tags") or {}
    return tags if isinstance(tags, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _document(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in _as_list(document.get("Statement")) if isinstance(s, Mapping)]


def _port_range(props: Props) -> tuple[int, int]:
    protocol = str(props.get("ipProtocol", props.get("protocol", "tcp")))
    if protocol in ("-1", "all"):
        return 0, 65535
    low = int(props.get("fromPort") or 0)
    to_port = props.get("toPort")
    high = int(to_port) if to_port is not None else low
    return low, high


def _open_sources(props: Props) -> set[str]:
    sources = {str(props[k]) for k in ("cidrIpv4", "cidrIpv6") if props.get(k)}
    for key in ("cidrBlocks", "ipv6CidrBlocks"):
        sources.update(str(c) for c in _as_list(props.get(key)))
    return sources & OPEN_CIDRS
