"""RDS PostgreSQL 16: private, KMS-encrypted, TLS forced, master password managed by RDS."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import child, tags
from infra_pulumi.config import StackConfig

DATABASE_NAME = "slipway"
MASTER_USERNAME = "slipway"


class Database(pulumi.ComponentResource):
    instance: aws.rds.Instance
    master_secret_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        subnet_ids: Sequence[pulumi.Input[str]],
        security_group_id: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:database:Database", name, None, opts)
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets",
            description="isolated subnets: no route to the internet",
            subnet_ids=list(subnet_ids),
            tags=tags(config, "db-subnets"),
            opts=child(self),
        )
        parameters = aws.rds.ParameterGroup(
            f"{name}-params",
            family="postgres16",
            description="slipway: TLS only, slow-query logging",
            parameters=[
                {"name": "rds.force_ssl", "value": "1"},
                {"name": "log_min_duration_statement", "value": "500"},
            ],
            tags=tags(config, "db-params"),
            opts=child(self),
        )
        self.instance = aws.rds.Instance(
            f"{name}-postgres",
            identifier=f"{config.name_prefix}-postgres",
            engine="postgres",
            engine_version="16",
            instance_class=config.db_instance_class,
            allocated_storage=config.db_allocated_storage_gb,
            max_allocated_storage=config.db_allocated_storage_gb * 4,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=kms_key_arn,
            db_name=DATABASE_NAME,
            username=MASTER_USERNAME,
            # RDS generates and rotates the password in Secrets Manager; Pulumi never sees it.
            manage_master_user_password=True,
            master_user_secret_kms_key_id=kms_key_arn,
            db_subnet_group_name=subnets.name,
            parameter_group_name=parameters.name,
            vpc_security_group_ids=[security_group_id],
            publicly_accessible=False,
            multi_az=config.db_multi_az,
            deletion_protection=config.db_deletion_protection,
            backup_retention_period=config.db_backup_retention_days,
            backup_window="02:00-03:00",
            maintenance_window="sun:03:30-sun:04:30",
            copy_tags_to_snapshot=True,
            skip_final_snapshot=not config.is_prod,
            final_snapshot_identifier=f"{config.name_prefix}-postgres-final"
            if config.is_prod
            else None,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=kms_key_arn,
            performance_insights_retention_period=7,
            enabled_cloudwatch_logs_exports=["postgresql", "upgrade"],
            auto_minor_version_upgrade=True,
            apply_immediately=not config.is_prod,
            tags=tags(config, "postgres"),
            opts=child(self, protect=config.is_prod),
        )
        self.master_secret_arn = self.instance.master_user_secrets.apply(
            lambda secrets: (secrets[0].secret_arn or "") if secrets else ""
        )
        self.register_outputs(
            {
                "address": self.instance.address,
                "masterSecretArn": self.master_secret_arn,
            }
        )
