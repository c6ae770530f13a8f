"""StackConfig: per-stack defaults, and every bad value fails naming its key."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pytest

from infra_pulumi.config import SECRET_KEYS, ConfigError, StackConfig, load_stack_config
from infra_pulumi.plan import read_stack_config

ADMIN_GROUP = "9067d4a5c1-8f3e2b1a-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
BASE = {
    "grafanaAdminGroupIds": f'["{ADMIN_GROUP}"]',
    "domainName": "staging.example.com",
    "hostedZoneId": "Z123",
    "githubRepository": "acme/slipway",
    "alertEmail": "ops@example.com",
    "slackTeamId": "T1",
    "slackChannelId": "C1",
}


def load(
    stack: str = "staging",
    values: Mapping[str, str] | None = None,
    *,
    secrets: tuple[str, ...] = SECRET_KEYS,
    region: str | None = "eu-west-1",
    keys: tuple[str, ...] = (),
) -> StackConfig:
    merged = {**BASE, **(values or {})}
    return load_stack_config(
        stack,
        region,
        merged.get,
        lambda key: pulumi.Output.secret("x" * 40) if key in secrets else None,
        keys,
    )


def test_staging_defaults_rehearse_prod_smaller() -> None:
    config = load("staging")
    assert config.api_runtime == "ecs"  # prod's topology
    assert len(config.availability_zones) == 2
    assert not config.nat_per_az
    assert config.db_backup_retention_days == 7
    assert not config.db_multi_az
    assert not config.waf_enabled


def test_prod_defaults_are_resilient_and_ecs() -> None:
    config = load("prod")
    assert config.api_runtime == "ecs"
    assert config.availability_zones == ("eu-west-1a", "eu-west-1b", "eu-west-1c")
    assert config.nat_per_az
    assert config.db_multi_az
    assert config.db_deletion_protection
    assert config.db_backup_retention_days == 30
    assert config.waf_enabled


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"apiRuntime": "kubernetes"}, "slipway:apiRuntime"),
        ({"domainName": ""}, "slipway:domainName"),
        ({"domainName": "Not A Domain"}, "slipway:domainName"),
        ({"alertEmail": "nobody"}, "slipway:alertEmail"),
        ({"githubRepository": "just-a-name"}, "slipway:githubRepository"),
        ({"githubFrontendRepository": "web"}, "slipway:githubFrontendRepository"),
        ({"azCount": "three"}, "slipway:azCount"),
        ({"azCount": "9"}, "slipway:azCount"),
        ({"availabilityZones": '["us-east-1a", "us-east-1b"]'}, "slipway:availabilityZones"),
        ({"dbMultiAz": "yes"}, "slipway:dbMultiAz"),
        ({"natGateways": "zero"}, "slipway:natGateways"),
        ({"vpcCidr": "192.168.0.0/16"}, "slipway:vpcCidr"),
        ({"apiMinTasks": "4", "apiMaxTasks": "2"}, "slipway:apiMaxTasks"),
        ({"hostedZoneId": " "}, "slipway:hostedZoneId"),
        ({"wafAllowedCidrs": '["0.0.0.0/0"]'}, "slipway:wafAllowedCidrs"),
        ({"wafAllowedCidrs": '["10.0.0.0/8"]'}, "slipway:wafAllowedCidrs"),
        ({"wafAllowedCidrs": '["203.0.113.7/24"]'}, "slipway:wafAllowedCidrs"),
        ({"wafAllowedCidrs": '["tester"]'}, "slipway:wafAllowedCidrs"),
    ],
)
def test_bad_values_name_their_key(values: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load("staging", values)


def test_front_end_repository_is_optional() -> None:
    assert load("staging").github_frontend_repository is None
    config = load("staging", {"githubFrontendRepository": "acme/web"})
    assert config.github_frontend_repository == "acme/web"


def test_prod_refuses_short_backup_retention() -> None:
    with pytest.raises(ConfigError, match="slipway:dbBackupRetentionDays must be at least 30"):
        load("prod", {"dbBackupRetentionDays": "7"})


def test_missing_secret_names_the_key_and_how_to_set_it() -> None:
    secrets = tuple(k for k in SECRET_KEYS if k != "stripeSecretKey")
    with pytest.raises(ConfigError, match=r"slipway:stripeSecretKey .*pulumi config set --secret"):
        load("staging", secrets=secrets)


def test_missing_region_is_named() -> None:
    with pytest.raises(ConfigError, match="aws:region"):
        load("staging", region=None)


def test_misspelt_key_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"slipway:apiRuntim .*slipway:apiRuntime"):
        load("staging", keys=("slipway:apiRuntim", "aws:region"))


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_committed_stack_files_hold_no_secrets_and_only_known_keys(stack: str) -> None:
    values = read_stack_config(stack)
    assert not {f"slipway:{key}" for key in SECRET_KEYS} & set(values)
    raw = {k.split(":", 1)[1]: v for k, v in values.items() if k.startswith("slipway:")}
    config = load(stack, raw, keys=tuple(values))
    assert config.stack == stack


@pytest.mark.parametrize(
    ("values", "key", "valid"),
    [
        # 256 CPU units take 512-2048 MiB; 3072 is a valid memory size, but not for 256.
        ({"apiCpu": "256", "apiMemoryMb": "3072"}, "slipway:apiMemoryMb", "512, 1024, 2048"),
        ({"apiCpu": "300", "apiMemoryMb": "1024"}, "slipway:apiCpu", "256, 512, 1024"),
        ({"apiCpu": "1024", "apiMemoryMb": "1500"}, "slipway:apiMemoryMb", "2048, 3072"),
        ({"logRetentionDays": "10"}, "slipway:logRetentionDays", "7, 14, 30"),
        ({"logRetentionDays": "100"}, "slipway:logRetentionDays", "90, 120"),
    ],
)
def test_fargate_sizes_and_log_retention_are_checked_at_load(
    values: dict[str, str], key: str, valid: str
) -> None:
    """Fargate and CloudWatch accept only certain values: say which at load, not at `up`."""
    with pytest.raises(ConfigError) as raised:
        load("staging", values)
    message = str(raised.value)
    assert message.startswith(key)
    assert valid in message


@pytest.mark.parametrize(
    ("cpu", "memory"), [("256", "512"), ("512", "4096"), ("4096", "30720"), ("16384", "122880")]
)
def test_valid_fargate_sizes_load(cpu: str, memory: str) -> None:
    config = load("prod", {"apiCpu": cpu, "apiMemoryMb": memory, "logRetentionDays": "3653"})
    assert (config.api_cpu, config.api_memory_mb) == (int(cpu), int(memory))


def test_grafana_admin_groups_are_required_and_checked() -> None:
    """Without a group holding the ADMIN role nobody can sign in to the Grafana workspace."""
    without = {k: v for k, v in BASE.items() if k != "grafanaAdminGroupIds"}
    with pytest.raises(ConfigError, match=r"slipway:grafanaAdminGroupIds is required"):
        load_stack_config(
            "staging", "eu-west-1", without.get, lambda _: pulumi.Output.secret("x" * 40)
        )
    with pytest.raises(ConfigError, match=r"slipway:grafanaViewerGroupIds .*group ids"):
        load("staging", {"grafanaViewerGroupIds": '["admins"]'})
    config = load("staging")
    assert config.grafana_admin_group_ids == (ADMIN_GROUP,)
