"""Typed stack configuration: every `slipway:*` key the program reads, with per-stack defaults.

The loader is a plain function over two lookups (plain values and secrets) so that tests can
feed it dictionaries; `from_pulumi()` binds it to `pulumi.Config`. Every error names the key,
and never echoes a secret value.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
from pulumi.runtime import config as runtime_config

NAMESPACE = "slipway"
PROD_STACKS = frozenset({"prod", "production"})
API_RUNTIMES = ("ecs", "lambda")
# none: no NAT gateway (dev stacks: private subnets reach AWS through VPC endpoints only).
NAT_MODES = ("none", "single", "perAz")
# On-demand development stacks: `dev` (the template, Pulumi.dev.yaml) and `dev-<name>` copies.
DEV_STACK = "dev"

# Secrets the operator sets with `pulumi config set --secret slipway:<key>`; they flow into
# Secrets Manager and never into stack outputs.
SECRET_KEYS = (
    "jwtPrivateKeys",
    "stripeSecretKey",
    "stripeWebhookSecrets",
    "metricsToken",
    "redisAuthToken",
)

# A dev stack has no cache: its API limits rates in process.
DEV_UNUSED_SECRETS = ("redisAuthToken",)

# Fargate task sizes: CPU units -> the memory sizes (MiB) Fargate accepts with them
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html).
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
# CloudWatch Logs' retention periods (PutRetentionPolicy); 0 ("never expire") is not offered.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    *(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731),
    *(1096, 1827, 2192, 2557, 2922, 3288, 3653),
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_DOMAIN = re.compile(r"^(?=.{1,200}$)([a-z0-9-]+\.)+[a-z]{2,}$")
# IAM Identity Center (identity store) group ids.
_GROUP_ID = re.compile(
    r"^([0-9a-f]{10}-|)[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}$"
)
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,20}$")
_CIDR16 = re.compile(r"^10\.(\d{1,3})\.0\.0/16$")


class ConfigError(ValueError):
    """A missing or invalid stack configuration value; the message names the key."""


@dataclass(frozen=True)
class StackDefaults:
    """What differs between a cheap staging stack and a resilient prod stack."""

    api_runtime: str
    az_count: int
    nat_mode: str
    vpc_cidr: str
    db_instance_class: str
    db_allocated_storage_gb: int
    db_backup_retention_days: int
    db_multi_az: bool
    db_deletion_protection: bool
    cache_node_type: str
    cache_replicas: int
    api_cpu: int
    api_memory_mb: int
    api_min_tasks: int
    api_max_tasks: int
    lambda_memory_mb: int
    log_retention_days: int
    waf_enabled: bool
    github_environment: str
    prefect_server_cpu: int
    prefect_server_memory_mb: int
    worker_cpu: int
    worker_memory_mb: int


# Staging rehearses prod: the same topology (ECS behind the ALB, ADOT, the same alerts), smaller.
STAGING_DEFAULTS = StackDefaults(
    api_runtime="ecs",
    az_count=2,
    nat_mode="single",
    vpc_cidr="10.20.0.0/16",
    db_instance_class="db.t4g.micro",
    db_allocated_storage_gb=20,
    db_backup_retention_days=7,
    db_multi_az=False,
    db_deletion_protection=False,
    cache_node_type="cache.t4g.micro",
    cache_replicas=0,
    api_cpu=256,
    api_memory_mb=1024,  # the API and its ADOT sidecar
    api_min_tasks=1,
    api_max_tasks=2,
    lambda_memory_mb=1024,
    log_retention_days=14,
    waf_enabled=False,
    github_environment="staging",
    prefect_server_cpu=256,
    prefect_server_memory_mb=1024,
    worker_cpu=512,
    worker_memory_mb=1024,
)

# A developer's own stack: the API as a Lambda function (scale to zero), one small database,
# no NAT gateway, no cache, no Prefect, no bastion, no alerting (nothing pages for a dev stack).
DEV_DEFAULTS = StackDefaults(
    api_runtime="lambda",
    az_count=2,  # RDS wants a subnet group in two zones, even for one instance
    nat_mode="none",
    vpc_cidr="10.40.0.0/16",
    db_instance_class="db.t4g.micro",
    db_allocated_storage_gb=20,
    db_backup_retention_days=7,
    db_multi_az=False,
    db_deletion_protection=False,
    cache_node_type="cache.t4g.micro",
    cache_replicas=0,
    api_cpu=256,
    api_memory_mb=512,
    api_min_tasks=1,
    api_max_tasks=1,
    lambda_memory_mb=1024,
    log_retention_days=7,
    waf_enabled=False,
    github_environment="development",
    prefect_server_cpu=256,
    prefect_server_memory_mb=1024,
    worker_cpu=512,
    worker_memory_mb=1024,
)

PROD_DEFAULTS = StackDefaults(
    api_runtime="ecs",
    az_count=3,
    nat_mode="perAz",
    vpc_cidr="10.30.0.0/16",
    # Burstable: an idle-to-moderate API; raise it with slipway:dbInstanceClass when CPU credits
    # run low (the cost goal of docs/deploying.md#running-stacks assumes this size).
    db_instance_class="db.t4g.medium",
    db_allocated_storage_gb=100,
    db_backup_retention_days=30,
    db_multi_az=True,
    db_deletion_protection=True,
    cache_node_type="cache.t4g.small",  # rate-limit counters and idempotency keys: small
    cache_replicas=1,
    api_cpu=512,
    api_memory_mb=1024,
    api_min_tasks=2,
    api_max_tasks=10,
    lambda_memory_mb=1536,
    log_retention_days=90,
    waf_enabled=True,
    github_environment="production",
    prefect_server_cpu=512,
    prefect_server_memory_mb=1024,
    worker_cpu=1024,
    worker_memory_mb=2048,
)


def is_dev_stack(stack: str) -> bool:
    return stack == DEV_STACK or stack.startswith(f"{DEV_STACK}-")


def defaults_for(stack: str) -> StackDefaults:
    if stack in PROD_STACKS:
        return PROD_DEFAULTS
    return DEV_DEFAULTS if is_dev_stack(stack) else STAGING_DEFAULTS


@dataclass(frozen=True)
class StackConfig:
    stack: str
    region: str
    is_prod: bool
    is_dev: bool
    api_runtime: Literal["ecs", "lambda"]
    availability_zones: tuple[str, ...]
    nat_mode: str
    vpc_cidr: str
    domain_name: str
    hosted_zone_id: str
    # The domain SES sends from (an identity with DKIM in hostedZoneId's zone).
    email_domain: str
    image_tag: str | None
    db_instance_class: str
    db_allocated_storage_gb: int
    db_backup_retention_days: int
    db_multi_az: bool
    db_deletion_protection: bool
    cache_node_type: str
    cache_replicas: int
    api_cpu: int
    api_memory_mb: int
    api_min_tasks: int
    api_max_tasks: int
    api_target_cpu_percent: int
    lambda_memory_mb: int
    # The most API function instances at once: each holds its own database connections
    # (docs/deploying.md, "Database connections from Lambda").
    lambda_reserved_concurrency: int
    log_retention_days: int
    backup_retention_days: int
    waf_enabled: bool
    waf_rate_limit_per_5min: int
    # Addresses the WAF lets through before any rule (a penetration tester's, for a test window).
    waf_allowed_cidrs: tuple[str, ...]
    github_repository: str
    github_environment: str
    alert_email: str
    slack_team_id: str
    slack_channel_id: str
    github_oidc_provider_arn: str | None
    # The front-end repository (owner/name) whose deploy workflow publishes its build to the
    # static bucket with a role of its own (ci_identity); None: no such role.
    github_frontend_repository: str | None
    grafana_admin_group_ids: tuple[str, ...]
    grafana_viewer_group_ids: tuple[str, ...]
    prefect_server_cpu: int
    prefect_server_memory_mb: int
    worker_cpu: int
    worker_memory_mb: int
    secrets: Mapping[str, pulumi.Output[str]]

    @property
    def name_prefix(self) -> str:
        return f"slipway-{self.stack}"

    @property
    def shared_services(self) -> bool:
        """Staging and prod run Prefect, the cache, the bastion, alerting and CI roles; a dev
        stack runs the API and its database only."""
        return not self.is_dev

    @property
    def has_nat(self) -> bool:
        return self.nat_mode != "none"

    @property
    def nat_per_az(self) -> bool:
        return self.nat_mode == "perAz"

    def secret(self, key: str) -> pulumi.Output[str]:
        return self.secrets[key]


ValueLookup = Callable[[str], str | None]
SecretLookup = Callable[[str], "pulumi.Output[str] | None"]


class _Reader:
    """Parses raw config strings; each method names the full key in its errors."""

    def __init__(self, get: ValueLookup) -> None:
        self._get = get
        self.seen: set[str] = set()

    @staticmethod
    def key(name: str) -> str:
        return f"{NAMESPACE}:{name}"

    def raw(self, name: str) -> str | None:
        self.seen.add(name)
        value = self._get(name)
        return value.strip() if value is not None and value.strip() else None

    def required(self, name: str, hint: str) -> str:
        value = self.raw(name)
        if value is None:
            raise ConfigError(f"{self.key(name)} is required: {hint}")
        return value

    def string(self, name: str, default: str) -> str:
        value = self.raw(name)
        return default if value is None else value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise ConfigError(f"{self.key(name)} must be one of {', '.join(choices)}")
        return value

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{self.key(name)} must be an integer") from None
        if not minimum <= number <= maximum:
            raise ConfigError(f"{self.key(name)} must be between {minimum} and {maximum}")
        return number

    def one_of(self, name: str, default: int, allowed: tuple[int, ...]) -> int:
        """An integer from a fixed set; the error lists the set."""
        number = self.integer(name, default, -(2**31), 2**31)
        if number not in allowed:
            valid = ", ".join(str(value) for value in allowed)
            raise ConfigError(f"{self.key(name)} must be one of {valid} (got {number})")
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise ConfigError(f"{self.key(name)} must be true or false")
        return lowered == "true"

    def pattern(self, name: str, value: str, regex: re.Pattern[str], what: str) -> str:
        if not regex.match(value):
            raise ConfigError(f"{self.key(name)} must be {what}")
        return value

    def group_ids(self, name: str, *, required: bool) -> tuple[str, ...]:
        """IAM Identity Center group ids (a list); `required` wants at least one."""
        if required and self.raw(name) is None:
            raise ConfigError(
                f"{self.key(name)} is required: the IAM Identity Center group ids whose members "
                "administer Grafana (docs/deploying.md, Identity Center)"
            )
        ids = self.string_list(name, [])
        if not all(_GROUP_ID.match(group) for group in ids):
            raise ConfigError(
                f"{self.key(name)} must list IAM Identity Center group ids "
                "(e.g. 9067d4a5c1-8f3e2b1a-4c5d-4e6f-8a9b-0c1d2e3f4a5b), not group names"
            )
        return tuple(ids)

    def cidrs(self, name: str) -> tuple[str, ...]:
        """Narrow address ranges (IPv4 /16 or longer, IPv6 /32 or longer), canonical form."""
        networks = []
        for text in self.string_list(name, []):
            try:
                network = ipaddress.ip_network(text, strict=True)
            except ValueError:
                raise ConfigError(
                    f"{self.key(name)}: {text!r} is not a CIDR (e.g. 203.0.113.7/32)"
                ) from None
            if network.prefixlen < (16 if network.version == 4 else 32):
                raise ConfigError(
                    f"{self.key(name)}: {text} is too broad to trust (IPv4 /16 or longer, "
                    "IPv6 /32 or longer)"
                )
            networks.append(str(network))
        return tuple(networks)

    def string_list(self, name: str, default: list[str]) -> list[str]:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"{self.key(name)} must be a YAML/JSON list of strings") from None
        if not isinstance(parsed, list) or not all(isinstance(v, str) for v in parsed):
            raise ConfigError(f"{self.key(name)} must be a YAML/JSON list of strings")
        return [str(v) for v in parsed]


def load_stack_config(
    stack: str,
    region: str | None,
    get: ValueLookup,
    get_secret: SecretLookup,
    configured_keys: Iterable[str] = (),
) -> StackConfig:
    """Builds the typed configuration of `stack`, or raises ConfigError naming the bad key.

    `configured_keys` (every key set on the stack) lets a misspelt `slipway:*` key fail
    instead of being silently ignored.
    """
    if not region:
        raise ConfigError("aws:region is required: the AWS region of this stack")
    defaults = defaults_for(stack)
    read = _Reader(get)
    is_prod = stack in PROD_STACKS
    is_dev = is_dev_stack(stack)

    def shared_setting(name: str, hint: str, regex: re.Pattern[str], what: str) -> str:
        # A dev stack has no alerting, CI roles or Grafana: these settings are optional there.
        value = read.raw(name) if is_dev else read.required(name, hint)
        return "" if value is None else read.pattern(name, value, regex, what)

    az_count = read.integer("azCount", defaults.az_count, 2, 6)
    zones = read.string_list(
        "availabilityZones", [f"{region}{suffix}" for suffix in "abcdef"[:az_count]]
    )
    if not 2 <= len(zones) <= 6 or len(set(zones)) != len(zones):
        raise ConfigError(f"{read.key('availabilityZones')} must list 2 to 6 distinct zones")
    if not all(zone.startswith(region) for zone in zones):
        raise ConfigError(f"{read.key('availabilityZones')} must be zones of {region}")

    runtime = read.choice("apiRuntime", defaults.api_runtime, API_RUNTIMES)
    vpc_cidr = read.pattern(
        "vpcCidr", read.string("vpcCidr", defaults.vpc_cidr), _CIDR16, "a 10.x.0.0/16 block"
    )
    domain = read.pattern(
        "domainName",
        read.required("domainName", "the public DNS name of this stack (e.g. api.example.com)"),
        _DOMAIN,
        "a lower-case DNS name",
    )
    alert_email = shared_setting(
        "alertEmail", "where ticket-severity alerts are emailed", _EMAIL, "an email address"
    )
    repository = shared_setting(
        "githubRepository",
        "the GitHub repository that deploys (owner/name)",
        _REPOSITORY,
        "owner/name",
    )
    min_tasks = read.integer("apiMinTasks", defaults.api_min_tasks, 1, 50)
    max_tasks = read.integer("apiMaxTasks", defaults.api_max_tasks, 1, 200)
    if max_tasks < min_tasks:
        raise ConfigError(f"{read.key('apiMaxTasks')} must be at least slipway:apiMinTasks")
    backup_days = read.integer("dbBackupRetentionDays", defaults.db_backup_retention_days, 1, 35)
    # Backups >= 7 days everywhere, >= 30 in prod (docs/deploying.md#running-stacks); refuse
    # early with the key named.
    floor = 30 if is_prod else 7
    if backup_days < floor:
        raise ConfigError(f"{read.key('dbBackupRetentionDays')} must be at least {floor}")

    api_cpu = read.one_of("apiCpu", defaults.api_cpu, tuple(FARGATE_SIZES))
    api_memory = read.one_of("apiMemoryMb", defaults.api_memory_mb, FARGATE_SIZES[api_cpu])

    secrets: dict[str, pulumi.Output[str]] = {}
    for name in SECRET_KEYS:
        value = get_secret(name)
        if value is None and is_dev and name in DEV_UNUSED_SECRETS:
            continue
        if value is None:
            raise ConfigError(
                f"{read.key(name)} is required: set it with "
                f"`pulumi config set --secret {read.key(name)} <value>`"
            )
        secrets[name] = value

    frontend_repository = read.raw("githubFrontendRepository")
    if frontend_repository is not None:
        read.pattern("githubFrontendRepository", frontend_repository, _REPOSITORY, "owner/name")

    config = StackConfig(
        stack=stack,
        region=region,
        is_prod=is_prod,
        is_dev=is_dev,
        api_runtime="ecs" if runtime == "ecs" else "lambda",
        availability_zones=tuple(zones),
        nat_mode=read.choice("natGateways", defaults.nat_mode, NAT_MODES),
        vpc_cidr=vpc_cidr,
        domain_name=domain,
        hosted_zone_id=read.required("hostedZoneId", "the Route 53 zone holding domainName"),
        email_domain=read.pattern(
            "emailDomain",
            read.string("emailDomain", domain),
            _DOMAIN,
            "a DNS name in the zone hostedZoneId (default: domainName)",
        ),
        image_tag=read.raw("imageTag"),
        db_instance_class=read.string("dbInstanceClass", defaults.db_instance_class),
        db_allocated_storage_gb=read.integer(
            "dbAllocatedStorageGb", defaults.db_allocated_storage_gb, 20, 16384
        ),
        db_backup_retention_days=backup_days,
        db_multi_az=read.boolean("dbMultiAz", defaults.db_multi_az),
        db_deletion_protection=read.boolean(
            "dbDeletionProtection", defaults.db_deletion_protection
        ),
        cache_node_type=read.string("cacheNodeType", defaults.cache_node_type),
        cache_replicas=read.integer("cacheReplicas", defaults.cache_replicas, 0, 5),
        api_cpu=api_cpu,
        api_memory_mb=api_memory,
        api_min_tasks=min_tasks,
        api_max_tasks=max_tasks,
        api_target_cpu_percent=read.integer("apiTargetCpuPercent", 60, 10, 90),
        lambda_memory_mb=read.integer("lambdaMemoryMb", defaults.lambda_memory_mb, 128, 10240),
        lambda_reserved_concurrency=read.integer("lambdaReservedConcurrency", 10, 1, 1000),
        log_retention_days=read.one_of(
            "logRetentionDays", defaults.log_retention_days, LOG_RETENTION_DAYS
        ),
        backup_retention_days=read.integer("backupObjectRetentionDays", 35, 1, 3650),
        waf_enabled=read.boolean("wafEnabled", defaults.waf_enabled),
        waf_rate_limit_per_5min=read.integer("wafRateLimitPer5Min", 2000, 100, 2_000_000),
        waf_allowed_cidrs=read.cidrs("wafAllowedCidrs"),
        github_repository=repository,
        github_environment=read.string("githubEnvironment", defaults.github_environment),
        alert_email=alert_email,
        slack_team_id=shared_setting(
            "slackTeamId", "the Slack workspace id (AWS Chatbot)", _SLACK_ID, "a Slack id"
        ),
        slack_channel_id=shared_setting(
            "slackChannelId", "the Slack channel id for pages", _SLACK_ID, "a Slack id"
        ),
        # The GitHub OIDC provider is account-wide: when both stacks share an account, the
        # second one reuses the first one's provider instead of creating a duplicate.
        github_oidc_provider_arn=read.raw("githubOidcProviderArn"),
        github_frontend_repository=frontend_repository,
        grafana_admin_group_ids=read.group_ids("grafanaAdminGroupIds", required=not is_dev),
        grafana_viewer_group_ids=read.group_ids("grafanaViewerGroupIds", required=False),
        prefect_server_cpu=defaults.prefect_server_cpu,
        prefect_server_memory_mb=defaults.prefect_server_memory_mb,
        worker_cpu=defaults.worker_cpu,
        worker_memory_mb=defaults.worker_memory_mb,
        secrets=secrets,
    )
    known = read.seen | set(SECRET_KEYS)
    for key in sorted(configured_keys):
        namespace, _, name = key.partition(":")
        if namespace == NAMESPACE and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {read.key(close[0])}?)" if close else ""
            raise ConfigError(f"{key} is not a setting this program reads{hint}")
    return config


def from_pulumi() -> StackConfig:
    """The configuration of the current Pulumi stack."""
    config = pulumi.Config(NAMESPACE)
    # Pulumi offers no public way to list a stack's keys; these are where the runtime keeps them.
    keys = {*runtime_config.CONFIG.get(), *runtime_config.get_config_env()}
    return load_stack_config(
        pulumi.get_stack(),
        pulumi.Config("aws").get("region"),
        config.get,
        config.get_secret,
        keys,
    )
