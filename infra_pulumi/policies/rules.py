"""CONTRACT.md §7 as plain functions: the policy pack and the tests run exactly these.

Resource rules take `(type, props, facts)` and return violation messages; stack rules take
every resource of the stack. Properties are Pulumi's camelCase names. Nothing here imports
Pulumi, so the same code runs inside CrossGuard and over mocked resources in tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
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
REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
CACHE_CLUSTER = "aws:elasticache/cluster:Cluster"
ECR = "aws:ecr/repository:Repository"
INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ROLE = "aws:iam/role:Role"
INSTANCE_PROFILE = "aws:iam/instanceProfile:InstanceProfile"
ROLE_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
LAMBDA = "aws:lambda/function:Function"
STACK = "pulumi:pulumi:Stack"

Props = Mapping[str, Any]


@dataclass(frozen=True)
class StackFacts:
    """What a rule may know about the stack besides its resources."""

    is_prod: bool
    # When set (policy config `githubRepository`), deploy-role trust must name this repository.
    github_repository: str | None = None

    @staticmethod
    def from_stack_name(stack: str, github_repository: str | None = None) -> StackFacts:
        return StackFacts(is_prod=stack in PROD_STACKS, github_repository=github_repository)


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


# ---------------------------------------------------------------------------------------------
# helpers


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


# ---------------------------------------------------------------------------------------------
# resource rules


def rds_private(_: str, props: Props, __: StackFacts) -> list[str]:
    return (
        ["RDS instance must not be publicly accessible"]
        if _true(props, "publiclyAccessible")
        else []
    )


def rds_encrypted(_: str, props: Props, __: StackFacts) -> list[str]:
    return [] if _true(props, "storageEncrypted") else ["RDS storage must be encrypted"]


def rds_managed_password(_: str, props: Props, __: StackFacts) -> list[str]:
    if props.get("replicateSourceDb"):
        return []
    problems = []
    if not _true(props, "manageMasterUserPassword"):
        problems.append("RDS master password must be managed in Secrets Manager")
    if props.get("password") or props.get("passwordWo"):
        problems.append("RDS master password must not be set by the program")
    return problems


def rds_backups(_: str, props: Props, facts: StackFacts) -> list[str]:
    floor = 30 if facts.is_prod else 7
    days = int(props.get("backupRetentionPeriod") or 0)
    return [] if days >= floor else [f"RDS backups must be kept at least {floor} days (got {days})"]


def rds_prod_multi_az(_: str, props: Props, facts: StackFacts) -> list[str]:
    if facts.is_prod and not _true(props, "multiAz"):
        return ["prod RDS must be multi-AZ"]
    return []


def rds_prod_deletion_protection(_: str, props: Props, facts: StackFacts) -> list[str]:
    if facts.is_prod and not _true(props, "deletionProtection"):
        return ["prod RDS must have deletion protection"]
    return []


BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def public_access_block_complete(_: str, props: Props, __: StackFacts) -> list[str]:
    missing = [flag for flag in BLOCK_FLAGS if not _true(props, flag)]
    return [f"public-access block must set {', '.join(missing)}"] if missing else []


def no_open_ingress(type_: str, props: Props, __: StackFacts) -> list[str]:
    """0.0.0.0/0 and ::/0 only on 443 (which group that is: `open_ingress_only_on_public_entry`)."""
    candidates: list[Props] = []
    if type_ == SECURITY_GROUP:
        role = _tags(props).get(ROLE_TAG)
        for rule in _as_list(props.get("ingress")):
            if _open_sources(rule) and role != "public-entry":
                return ["inline open ingress is only allowed on the public-entry group"]
            candidates.append(rule)
    elif type_ == INGRESS_RULE or (type_ == SG_RULE and props.get("type") == "ingress"):
        candidates.append(props)
    for rule in candidates:
        if _open_sources(rule) and _port_range(rule) != (HTTPS, HTTPS):
            low, high = _port_range(rule)
            return [f"ingress from anywhere must be port 443 only (got {low}-{high})"]
    return []


def rules_described(type_: str, props: Props, __: StackFacts) -> list[str]:
    if type_ == SECURITY_GROUP:
        problems = []
        if not str(props.get("description") or "").strip() or props.get("description") == (
            "Managed by Pulumi"
        ):
            problems.append("security group needs a description of its purpose")
        for direction in ("ingress", "egress"):
            if any(
                not str(r.get("description") or "").strip() for r in _as_list(props.get(direction))
            ):
                problems.append(f"every inline {direction} rule needs a description")
        return problems
    return (
        []
        if str(props.get("description") or "").strip()
        else ["security group rule needs a description"]
    )


def _behaviours(props: Props) -> list[Props]:
    default = props.get("defaultCacheBehavior")
    return [
        b
        for b in [default, *_as_list(props.get("orderedCacheBehaviors"))]
        if isinstance(b, Mapping)
    ]


def cloudfront_https_only(_: str, props: Props, __: StackFacts) -> list[str]:
    problems = []
    for behaviour in _behaviours(props):
        if behaviour.get("viewerProtocolPolicy") not in ("https-only", "redirect-to-https"):
            where = behaviour.get("pathPattern", "default")
            problems.append(f"behaviour {where} must redirect to or require HTTPS")
    for origin in _as_list(props.get("origins")):
        custom = origin.get("customOriginConfig")
        if isinstance(custom, Mapping) and custom.get("originProtocolPolicy") != "https-only":
            problems.append(f"origin {origin.get('originId')} must be reached over HTTPS only")
    return problems


WEAK_PROTOCOLS = frozenset({"SSLv3", "TLSv1", "TLSv1.1"})


def cloudfront_tls(_: str, props: Props, __: StackFacts) -> list[str]:
    problems = []
    certificate = props.get("viewerCertificate") or {}
    version = str(certificate.get("minimumProtocolVersion") or "")
    # The default *.cloudfront.net certificate always allows TLS 1.0.
    if _true(certificate, "cloudfrontDefaultCertificate") or not (
        version.startswith("TLSv1.2_") or version.startswith("TLSv1.3")
    ):
        problems.append("viewer TLS must be at least 1.2 (custom certificate, TLSv1.2_2021)")
    for origin in _as_list(props.get("origins")):
        custom = origin.get("customOriginConfig") or {}
        weak = WEAK_PROTOCOLS & set(_as_list(custom.get("originSslProtocols")))
        if weak:
            problems.append(f"origin {origin.get('originId')} allows {', '.join(sorted(weak))}")
    return problems


_S3_DOMAIN = re.compile(r"\.s3([.-][a-z0-9-]+)?\.amazonaws\.com$")


def cloudfront_s3_oac(_: str, props: Props, __: StackFacts) -> list[str]:
    problems = []
    for origin in _as_list(props.get("origins")):
        domain = str(origin.get("domainName") or "")
        # Without a custom origin config CloudFront treats an origin as S3.
        is_s3 = _S3_DOMAIN.search(domain) is not None or not origin.get("customOriginConfig")
        if not is_s3:
            continue
        identity = (origin.get("s3OriginConfig") or {}).get("originAccessIdentity")
        if not origin.get("originAccessControlId") or identity or origin.get("customOriginConfig"):
            problems.append(f"S3 origin {origin.get('originId')} must use Origin Access Control")
    return problems


def cloudfront_prod_waf(_: str, props: Props, facts: StackFacts) -> list[str]:
    if facts.is_prod and not props.get("webAclId"):
        return ["prod CloudFront must have a WAF web ACL attached"]
    return []


def elasticache_encryption(type_: str, props: Props, __: StackFacts) -> list[str]:
    if type_ == CACHE_CLUSTER:
        if props.get("replicationGroupId"):
            return []
        return ["standalone cache clusters cannot encrypt at rest: use a replication group"]
    missing = [
        what
        for what, key in (
            ("in transit", "transitEncryptionEnabled"),
            ("at rest", "atRestEncryptionEnabled"),
        )
        if not _true(props, key)
    ]
    return [f"ElastiCache must encrypt {' and '.join(missing)}"] if missing else []


def ecr_scan_on_push(_: str, props: Props, __: StackFacts) -> list[str]:
    scanning = props.get("imageScanningConfiguration") or {}
    return [] if _true(scanning, "scanOnPush") else ["ECR repository must scan images on push"]


def ecr_immutable(_: str, props: Props, __: StackFacts) -> list[str]:
    if props.get("imageTagMutability") == "IMMUTABLE":
        return []
    return ["ECR repository tags must be immutable"]


def ec2_imdsv2(type_: str, props: Props, __: StackFacts) -> list[str]:
    options = props.get("metadataOptions") or {}
    if options.get("httpTokens") == "required" or options.get("httpEndpoint") == "disabled":
        return []
    return ["EC2 metadata must require IMDSv2 tokens (httpTokens=required)"]


def ec2_no_public_ip(type_: str, props: Props, __: StackFacts) -> list[str]:
    if type_ == LAUNCH_TEMPLATE:
        interfaces = _as_list(props.get("networkInterfaces"))
        if any(_true(i, "associatePublicIpAddress") for i in interfaces):
            return ["launch template must not associate public IPs"]
        return []
    if (
        props.get("associatePublicIpAddress") is False
        or str(props.get("associatePublicIpAddress")).lower() == "false"
    ):
        return []
    return ["EC2 instance must set associatePublicIpAddress=false"]


def ec2_ssm_only(type_: str, props: Props, __: StackFacts) -> list[str]:
    problems = []
    if props.get("keyName"):
        problems.append("EC2 instance must not have an SSH key pair (use SSM Session Manager)")
    if type_ == INSTANCE and not props.get("iamInstanceProfile"):
        problems.append("EC2 instance needs an instance profile for SSM")
    return problems


def github_trust_pinned(_: str, props: Props, facts: StackFacts) -> list[str]:
    problems = []
    for statement in _statements(_document(props.get("assumeRolePolicy"))):
        principal = statement.get("Principal") or {}
        federated = " ".join(str(p) for p in _as_list(principal.get("Federated")))
        conditions = statement.get("Condition") or {}
        condition_keys = " ".join(str(k) for c in conditions.values() for k in (c or {}))
        # A GitHub trust is recognised by its issuer in the principal or in the conditions.
        if statement.get("Effect") != "Allow" or GITHUB_ISSUER not in federated + condition_keys:
            continue
        equals = conditions.get("StringEquals") or {}
        audience = equals.get(f"{GITHUB_ISSUER}:aud")
        subject = equals.get(f"{GITHUB_ISSUER}:sub")
        if audience != "sts.amazonaws.com":
            problems.append("GitHub OIDC trust must pin aud to sts.amazonaws.com (StringEquals)")
        match = re.fullmatch(r"repo:([^/*?]+/[^:*?]+):environment:([^*?]+)", str(subject or ""))
        if not isinstance(subject, str) or match is None:
            problems.append(
                "GitHub OIDC trust must pin sub to repo:<owner>/<repo>:environment:<env> "
                "with StringEquals (no wildcards)"
            )
        elif facts.github_repository and match.group(1) != facts.github_repository:
            problems.append(
                f"GitHub OIDC trust names {match.group(1)}, not {facts.github_repository}"
            )
        if any(key.startswith(GITHUB_ISSUER) for key in (conditions.get("StringLike") or {})):
            problems.append("GitHub OIDC trust must not use StringLike wildcards")
    return problems


_SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PRIVATE|TOKEN|API_?KEY|CREDENTIAL)", re.IGNORECASE)
_REFERENCE_NAME = re.compile(r"(_ARNS?|_ID|_NAME)$", re.IGNORECASE)


def _secret_like_names(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if _SECRET_NAME.search(n) and not _REFERENCE_NAME.search(n))


def no_plaintext_secret_env(type_: str, props: Props, __: StackFacts) -> list[str]:
    """Containers get secrets by reference (ECS `secrets`), never as plain env values."""
    names: list[str] = []
    if type_ == TASK_DEFINITION:
        definitions = props.get("containerDefinitions")
        parsed = json.loads(definitions) if isinstance(definitions, str) else definitions or []
        for container in _as_list(parsed):
            names += [str(e.get("name")) for e in _as_list(container.get("environment"))]
    elif type_ == LAMBDA:
        names += list(((props.get("environment") or {}).get("variables") or {}).keys())
    leaked = _secret_like_names(names)
    return (
        [f"secret-looking env values must come from Secrets Manager: {', '.join(leaked)}"]
        if leaked
        else []
    )


RESOURCE_RULES: tuple[ResourceRule, ...] = (
    ResourceRule("rds-private", "RDS is not publicly accessible", frozenset({RDS}), rds_private),
    ResourceRule("rds-encrypted", "RDS storage is encrypted", frozenset({RDS}), rds_encrypted),
    ResourceRule(
        "rds-managed-master-password",
        "RDS master password is managed in Secrets Manager",
        frozenset({RDS}),
        rds_managed_password,
    ),
    ResourceRule(
        "rds-backup-retention", "RDS backups >= 7 days (prod >= 30)", frozenset({RDS}), rds_backups
    ),
    ResourceRule("rds-prod-multi-az", "prod RDS is multi-AZ", frozenset({RDS}), rds_prod_multi_az),
    ResourceRule(
        "rds-prod-deletion-protection",
        "prod RDS has deletion protection",
        frozenset({RDS}),
        rds_prod_deletion_protection,
    ),
    ResourceRule(
        "s3-public-access-block-complete",
        "public-access blocks set all four flags",
        frozenset({PUBLIC_ACCESS_BLOCK}),
        public_access_block_complete,
    ),
    ResourceRule(
        "sg-no-open-ingress",
        "no ingress from 0.0.0.0/0 or ::/0 except 443",
        frozenset({SECURITY_GROUP, INGRESS_RULE, SG_RULE}),
        no_open_ingress,
    ),
    ResourceRule(
        "sg-rules-described",
        "every security group and rule is described",
        frozenset({SECURITY_GROUP, INGRESS_RULE, EGRESS_RULE, SG_RULE}),
        rules_described,
    ),
    ResourceRule(
        "cloudfront-https-only",
        "CloudFront is HTTPS only",
        frozenset({DISTRIBUTION}),
        cloudfront_https_only,
    ),
    ResourceRule(
        "cloudfront-tls-1-2", "CloudFront TLS >= 1.2", frozenset({DISTRIBUTION}), cloudfront_tls
    ),
    ResourceRule(
        "cloudfront-s3-origin-oac",
        "S3 origins use Origin Access Control",
        frozenset({DISTRIBUTION}),
        cloudfront_s3_oac,
    ),
    ResourceRule(
        "cloudfront-prod-waf",
        "prod CloudFront has WAF",
        frozenset({DISTRIBUTION}),
        cloudfront_prod_waf,
    ),
    ResourceRule(
        "elasticache-encryption",
        "ElastiCache encrypts in transit and at rest",
        frozenset({REPLICATION_GROUP, CACHE_CLUSTER}),
        elasticache_encryption,
    ),
    ResourceRule("ecr-scan-on-push", "ECR scans on push", frozenset({ECR}), ecr_scan_on_push),
    ResourceRule("ecr-immutable-tags", "ECR tags are immutable", frozenset({ECR}), ecr_immutable),
    ResourceRule(
        "ec2-imdsv2", "EC2 requires IMDSv2", frozenset({INSTANCE, LAUNCH_TEMPLATE}), ec2_imdsv2
    ),
    ResourceRule(
        "ec2-no-public-ip",
        "EC2 has no public IP",
        frozenset({INSTANCE, LAUNCH_TEMPLATE}),
        ec2_no_public_ip,
    ),
    ResourceRule(
        "ec2-ssm-only",
        "EC2 is reached through SSM, not SSH",
        frozenset({INSTANCE, LAUNCH_TEMPLATE}),
        ec2_ssm_only,
    ),
    ResourceRule(
        "github-oidc-trust-pinned",
        "GitHub OIDC roles pin aud and sub to one repository environment",
        frozenset({ROLE}),
        github_trust_pinned,
    ),
    ResourceRule(
        "no-plaintext-secret-env",
        "containers receive secrets from Secrets Manager, not plain env",
        frozenset({TASK_DEFINITION, LAMBDA}),
        no_plaintext_secret_env,
    ),
)


# ---------------------------------------------------------------------------------------------
# stack rules (relations between resources)


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
    StackRule("stack-outputs-no-secrets", "no secret in a stack output", stack_outputs_clean),
)


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
