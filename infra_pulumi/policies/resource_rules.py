"""Resource validation rules: one resource's properties (camelCase) against the stack invariants
(docs/deploying.md#running-stacks)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from infra_pulumi.policies.model import (
    CACHE_CLUSTER,
    DISTRIBUTION,
    ECR,
    EGRESS_RULE,
    GITHUB_ISSUER,
    HTTPS,
    IAM_POLICY,
    INGRESS_RULE,
    INSTANCE,
    LAMBDA,
    LAUNCH_TEMPLATE,
    PUBLIC_ACCESS_BLOCK,
    RDS,
    REPLICATION_GROUP,
    ROLE,
    ROLE_POLICY,
    ROLE_TAG,
    SECURITY_GROUP,
    SG_RULE,
    TASK_DEFINITION,
    Props,
    ResourceRule,
    StackFacts,
    _as_list,
    _document,
    _open_sources,
    _port_range,
    _statements,
    _tags,
    _true,
)


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


def behaviours(props: Props) -> list[Props]:
    """A distribution's default behaviour and its ordered ones."""
    default = props.get("defaultCacheBehavior")
    return [
        b
        for b in [default, *_as_list(props.get("orderedCacheBehaviors"))]
        if isinstance(b, Mapping)
    ]


def cloudfront_https_only(_: str, props: Props, __: StackFacts) -> list[str]:
    problems = []
    for behaviour in behaviours(props):
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


def _trusted_repositories(facts: StackFacts) -> tuple[str, ...]:
    named = (facts.github_repository, facts.github_frontend_repository)
    return tuple(repository for repository in named if repository)


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
        elif facts.github_repository and match.group(1) not in _trusted_repositories(facts):
            problems.append(
                f"GitHub OIDC trust names {match.group(1)}, not "
                + " or ".join(_trusted_repositories(facts))
            )
        if any(key.startswith(GITHUB_ISSUER) for key in (conditions.get("StringLike") or {})):
            problems.append("GitHub OIDC trust must not use StringLike wildcards")
    return problems


_SES_SEND = re.compile(
    r"^(\*|ses:\*|ses:Send\*|ses:Send(Raw|Templated|BulkTemplated|Bulk)?Email)$", re.IGNORECASE
)
_SES_SENDING_RESOURCE = re.compile(
    r"^arn:aws[\w-]*:ses:[\w-]+:\d{12}:(identity|configuration-set)/[^*?]+$"
)


def ses_send_scoped(_: str, props: Props, __: StackFacts) -> list[str]:
    """Whoever may send through SES may do so from named identities only, never `*`: a role
    allowed to send as any identity of the account can impersonate every domain it holds."""
    problems = []
    for statement in _statements(_document(props.get("policy"))):
        actions = [str(action) for action in _as_list(statement.get("Action"))]
        if statement.get("Effect") != "Allow" or not any(_SES_SEND.match(a) for a in actions):
            continue
        resources = [str(resource) for resource in _as_list(statement.get("Resource"))]
        identities = [r for r in resources if ":identity/" in r and _SES_SENDING_RESOURCE.match(r)]
        if not identities or not all(_SES_SENDING_RESOURCE.match(r) for r in resources):
            problems.append(
                "SES sending must name its identities (arn:aws:ses:…:identity/…) and "
                "configuration sets, never '*'"
            )
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
        "ses-send-scoped",
        "SES sending is allowed from named identities only",
        frozenset({ROLE_POLICY, IAM_POLICY}),
        ses_send_scoped,
    ),
    ResourceRule(
        "no-plaintext-secret-env",
        "containers receive secrets from Secrets Manager, not plain env",
        frozenset({TASK_DEFINITION, LAMBDA}),
        no_plaintext_secret_env,
    ),
)
