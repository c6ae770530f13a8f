"""ElastiCache Valkey (Redis-compatible): TLS in transit, KMS at rest, AUTH token, prod failover."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import child, tags
from infra_pulumi.config import StackConfig

REDIS_PORT = 6379


class Cache(pulumi.ComponentResource):
    replication_group: aws.elasticache.ReplicationGroup
    redis_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        subnet_ids: Sequence[pulumi.Input[str]],
        security_group_id: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:cache:Cache", name, None, opts)
        subnets = aws.elasticache.SubnetGroup(
            f"{name}-subnets",
            name=f"{config.name_prefix}-cache",
            description="isolated subnets: no route to the internet",
            subnet_ids=list(subnet_ids),
            tags=tags(config, "cache-subnets"),
            opts=child(self),
        )
        failover = config.cache_replicas > 0
        token = config.secret("redisAuthToken")
        self.replication_group = aws.elasticache.ReplicationGroup(
            f"{name}-valkey",
            replication_group_id=f"{config.name_prefix}-cache",
            description=f"{config.name_prefix} rate limits and shared state",
            engine="valkey",
            engine_version="8.0",
            node_type=config.cache_node_type,
            num_cache_clusters=1 + config.cache_replicas,
            automatic_failover_enabled=failover,
            multi_az_enabled=failover,
            port=REDIS_PORT,
            subnet_group_name=subnets.name,
            security_group_ids=[security_group_id],
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=kms_key_arn,
            auth_token=token,
            snapshot_retention_limit=7 if config.is_prod else 1,
            apply_immediately=not config.is_prod,
            tags=tags(config, "cache"),
            opts=child(self),
        )
        # The URL embeds the AUTH token, so it is only ever handled as a secret.
        self.redis_url = pulumi.Output.secret(
            pulumi.Output.all(token, self.replication_group.primary_endpoint_address).apply(
                lambda values: f"rediss://:{quote(values[0], safe='')}@{values[1]}:{REDIS_PORT}/0"
            )
        )
        self.register_outputs({"primaryEndpoint": self.replication_group.primary_endpoint_address})
