"""RDS PostgreSQL 16: private, KMS-encrypted, TLS forced, master password managed by RDS, and
the API's own least-privilege role with a secret of its own, rotated by Secrets Manager.

The master user is for migrations (and Prefect's own database); the API runs as `slipway_app`,
which the migrations create and grant DML (api/database_roles.py). Its secret holds the JSON
document AWS's single-user PostgreSQL rotation function expects; the API re-reads it whenever
PostgreSQL refuses a connection, so rotations need no restart (docs/runtime-on-aws.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra_pulumi.components._shared import child, tags
from infra_pulumi.config import StackConfig

DATABASE_NAME = "slipway"
MASTER_USERNAME = "slipway"
APP_USERNAME = "slipway_app"
# AWS's rotation function for one PostgreSQL user (Serverless Application Repository).
ROTATION_APPLICATION = (
    "arn:aws:serverlessrepo:us-east-1:297356227824:applications/"
    "SecretsManagerRDSPostgreSQLRotationSingleUser"
)
ROTATION_DAYS = 30


class Database(pulumi.ComponentResource):
    instance: aws.rds.Instance
    master_secret_arn: pulumi.Output[str]
    app_secret: aws.secretsmanager.Secret

    def __init__(
        self,
        name: str,
        config: StackConfig,
        subnet_ids: Sequence[pulumi.Input[str]],
        security_group_id: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        rotation_subnet_ids: Sequence[pulumi.Input[str]],
        rotation_security_group_id: pulumi.Input[str],
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
        self.app_secret = self._app_secret(
            name, config, kms_key_arn, rotation_subnet_ids, rotation_security_group_id
        )
        self.register_outputs(
            {
                "address": self.instance.address,
                "masterSecretArn": self.master_secret_arn,
                "appSecretArn": self.app_secret.arn,
            }
        )

    def _app_secret(
        self,
        name: str,
        config: StackConfig,
        kms_key_arn: pulumi.Input[str],
        subnet_ids: Sequence[pulumi.Input[str]],
        security_group_id: pulumi.Input[str],
    ) -> aws.secretsmanager.Secret:
        secret = aws.secretsmanager.Secret(
            f"{name}-app",
            name=f"{config.name_prefix}/database-app",
            description="PostgreSQL role the API runs as (DML only); rotated",
            kms_key_id=kms_key_arn,
            recovery_window_in_days=30 if config.is_prod else 7,
            tags=tags(config, "database-app"),
            opts=child(self),
        )
        password = random.RandomPassword(
            f"{name}-app-initial", length=40, special=False, opts=child(self)
        ).result
        document: pulumi.Input[str] = pulumi.Output.all(self.instance.address, password).apply(
            lambda values: json.dumps(
                {
                    "engine": "postgres",
                    "host": values[0],
                    "port": 5432,
                    "dbname": DATABASE_NAME,
                    "username": APP_USERNAME,
                    "password": values[1],
                }
            )
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-app",
            secret_id=secret.id,
            secret_string=pulumi.Output.secret(document),
            # The first value only: the rotation owns the password afterwards.
            opts=child(self, ignore_changes=["secretString"]),
        )
        rotation = aws.serverlessrepository.CloudFormationStack(
            f"{name}-app-rotation",
            name=f"{config.name_prefix}-database-app-rotation",
            application_id=ROTATION_APPLICATION,
            capabilities=["CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"],
            parameters={
                "functionName": f"{config.name_prefix}-database-app-rotation",
                "endpoint": f"https://secretsmanager.{config.region}.amazonaws.com",
                "kmsKeyArn": kms_key_arn,
                # In the VPC, in a group the database admits, reaching Secrets Manager via NAT.
                "vpcSubnetIds": pulumi.Output.all(*subnet_ids).apply(",".join),
                "vpcSecurityGroupIds": security_group_id,
            },
            opts=child(self),
        )
        aws.secretsmanager.SecretRotation(
            f"{name}-app",
            secret_id=secret.id,
            rotation_lambda_arn=rotation.outputs.apply(lambda o: o["RotationLambdaARN"]),
            rotation_rules={"automatically_after_days": ROTATION_DAYS},
            opts=child(self),
        )
        return secret
