"""Prefect on ECS: the self-hosted server + UI behind an ALB with Cognito sign-in, and a process
worker (pool `slipway-process`, as prefect.yaml declares) running the flows inside its task,
whose role is allowed exactly what the flows need."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra_pulumi.components import _containers as containers
from infra_pulumi.components._certificates import alias_records, validated_certificate
from infra_pulumi.components._shared import (
    child,
    output_document,
    read_secrets_document,
    service_trust,
    tags,
)
from infra_pulumi.components.database import DATABASE_NAME
from infra_pulumi.components.flows_registration import FLOWS_HOME, registration_container
from infra_pulumi.config import StackConfig

PREFECT_PORT = 4200
PREFECT_DATABASE = "prefect"
WORK_POOL = "slipway-process"  # prefect.yaml's work pool


@dataclass(frozen=True)
class FlowsInputs:
    vpc_id: pulumi.Input[str]
    # The stack's one load balancer (compute): the Prefect UI is a host-name rule on it.
    balancer: aws.lb.LoadBalancer
    listener: aws.lb.Listener
    private_subnet_ids: Sequence[pulumi.Input[str]]
    worker_security_group_id: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    backup_bucket_name: pulumi.Input[str]
    reports_bucket_name: pulumi.Input[str]
    alerts_topic_arn: pulumi.Input[str]
    database_secret_arn: pulumi.Input[str]
    database_host: pulumi.Input[str]
    stripe_secret_arn: pulumi.Input[str]
    server_log_group: pulumi.Input[str]
    worker_log_group: pulumi.Input[str]


@dataclass(frozen=True)
class FlowResources:
    """What the flow runs touch, resolved (ARNs and names)."""

    backup_bucket: str
    reports_bucket: str
    kms_key_arn: str
    database_secret_arn: str
    stripe_secret_arn: str
    git_token_secret_arn: str
    alerts_topic_arn: str


def flow_run_policy_statements(resources: FlowResources) -> list[dict[str, Any]]:
    """What the flows need and nothing else: backups in S3 under the stack's KMS key, their
    reports under reports/, the database credentials, the Stripe key for reconciliation, the
    read-only git token for tech-debt, and the pages topic for failure notices."""
    reports = f"arn:aws:s3:::{resources.reports_bucket}"
    return [
        {
            "Sid": "BackupBucketList",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{resources.backup_bucket}",
        },
        {
            "Sid": "BackupObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": f"arn:aws:s3:::{resources.backup_bucket}/*",
        },
        {
            "Sid": "ReportsList",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": reports,
            "Condition": {"StringLike": {"s3:prefix": ["reports/*"]}},
        },
        {
            "Sid": "ReportsObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"{reports}/reports/*",
        },
        {
            "Sid": "BackupEncryption",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": resources.kms_key_arn,
        },
        {
            "Sid": "FlowSecrets",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": [
                resources.database_secret_arn,
                resources.stripe_secret_arn,
                resources.git_token_secret_arn,
            ],
        },
        {
            "Sid": "FailureNotices",
            "Effect": "Allow",
            "Action": "sns:Publish",
            "Resource": resources.alerts_topic_arn,
        },
    ]


class FlowsWorker(pulumi.ComponentResource):
    flows_role: aws.iam.Role
    repository: aws.ecr.Repository
    prefect_ui_url: str
    registration_task_family: pulumi.Output[str]
    run_task_network: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        inputs: FlowsInputs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:flows:FlowsWorker", name, None, opts)
        self._name = name
        self._config = config
        self._inputs = inputs
        prefect_domain = f"prefect.{config.domain_name}"
        self.prefect_ui_url = f"https://{prefect_domain}"

        self.repository = aws.ecr.Repository(
            f"{name}-flows",
            name=f"{config.name_prefix}-flows",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": inputs.kms_key_arn}],
            force_delete=not config.is_prod,
            tags=tags(config, "ecr-flows"),
            opts=child(self),
        )

        # tech-debt clones the repository and rewrites its tracking issue with a token an
        # operator puts here (`aws secretsmanager put-secret-value`; fine-grained, this
        # repository only, Contents: read + Issues: write); the stack holds no value, so none is
        # in its state, and the flow says what to do while it is empty.
        self.git_token_secret = aws.secretsmanager.Secret(
            f"{name}-tech-debt-git-token",
            name=f"{config.name_prefix}/tech-debt-git-token",
            description=f"token for {config.github_repository}: contents read (clone), issues "
            "write (tracking issue); tech-debt flow",
            kms_key_id=inputs.kms_key_arn,
            recovery_window_in_days=30 if config.is_prod else 7,
            tags=tags(config, "tech-debt-git-token"),
            opts=child(self),
        )
        # The worker runs flows in its own process, so its task role is the flows' role.
        self.flows_role = self._role("flow-runs", "Prefect flow runs: backups, reconciliation")
        aws.iam.RolePolicy(
            f"{name}-flow-runs",
            role=self.flows_role.name,
            policy=output_document(
                pulumi.Output.all(
                    inputs.backup_bucket_name,
                    inputs.reports_bucket_name,
                    inputs.kms_key_arn,
                    inputs.database_secret_arn,
                    inputs.stripe_secret_arn,
                    self.git_token_secret.arn,
                    inputs.alerts_topic_arn,
                ).apply(lambda v: flow_run_policy_statements(FlowResources(*v)))
            ),
            opts=child(self),
        )
        execution = self._role(
            "flows-execution", "ECS agent for Prefect tasks: images, logs, secrets"
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-flows-execution-managed",
            role=execution.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-flows-execution-secrets",
            role=execution.name,
            policy=read_secrets_document(
                [inputs.database_secret_arn, inputs.stripe_secret_arn], inputs.kms_key_arn
            ),
            opts=child(self),
        )
        namespace = aws.servicediscovery.HttpNamespace(
            f"{name}-namespace",
            name=f"{config.name_prefix}.internal",
            description="ECS Service Connect: the worker reaches the Prefect server",
            tags=tags(config, "namespace"),
            opts=child(self),
        )
        # `aws ecs run-task --network-configuration` for the registration task: the worker
        # group, which may reach the Prefect server's port.
        self.run_task_network = containers.run_task_network(
            inputs.private_subnet_ids, inputs.worker_security_group_id
        )
        self.registration_task_family = pulumi.Output.from_input("")
        target_group, listener = self._ui_load_balancer(prefect_domain)
        # The server and the worker run the flows image: one Prefect version (the lock's), and
        # the RDS CA bundle the server verifies the database with.
        if config.image_tag:
            image = pulumi.Output.concat(self.repository.repository_url, ":", config.image_tag)
            self._server_service(
                namespace, target_group, listener, execution, prefect_domain, image
            )
            self._worker_service(namespace, execution, image)
            self.registration_task_family = self._registration_task(execution, image).family
        else:
            pulumi.log.warn(
                "slipway:imageTag is not set: the Prefect services are not deployed yet"
            )
        self.register_outputs(
            {
                "prefectUiUrl": self.prefect_ui_url,
                "flowsRoleArn": self.flows_role.arn,
                "flowsRegistrationTaskFamily": self.registration_task_family,
            }
        )

    def _role(self, purpose: str, description: str) -> aws.iam.Role:
        return aws.iam.Role(
            f"{self._name}-{purpose}",
            name=f"{self._config.name_prefix}-{purpose}",
            assume_role_policy=service_trust("ecs-tasks.amazonaws.com"),
            description=description,
            tags=tags(self._config, purpose),
            opts=child(self),
        )

    def _ui_load_balancer(
        self, prefect_domain: str
    ) -> tuple[aws.lb.TargetGroup, aws.lb.ListenerRule]:
        name, config, inputs = self._name, self._config, self._inputs
        pool = aws.cognito.UserPool(
            f"{name}-users",
            name=f"{config.name_prefix}-prefect",
            # Operators are invited; nobody signs themselves up.
            admin_create_user_config={"allow_admin_create_user_only": True},
            mfa_configuration="ON",
            software_token_mfa_configuration={"enabled": True},
            password_policy={
                "minimum_length": 14,
                "require_lowercase": True,
                "require_uppercase": True,
                "require_numbers": True,
                "require_symbols": False,
            },
            username_attributes=["email"],
            deletion_protection="ACTIVE" if config.is_prod else "INACTIVE",
            tags=tags(config, "prefect-users"),
            opts=child(self),
        )
        client = aws.cognito.UserPoolClient(
            f"{name}-alb",
            user_pool_id=pool.id,
            generate_secret=True,
            allowed_oauth_flows=["code"],
            allowed_oauth_flows_user_pool_client=True,
            allowed_oauth_scopes=["openid", "email"],
            callback_urls=[f"https://{prefect_domain}/oauth2/idpresponse"],
            supported_identity_providers=["COGNITO"],
            opts=child(self),
        )
        domain = aws.cognito.UserPoolDomain(
            f"{name}-login",
            domain=pulumi.Output.concat(config.name_prefix, "-prefect-", pool.id.apply(_short_id)),
            user_pool_id=pool.id,
            opts=child(self),
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-prefect-server",
            name=f"{config.name_prefix}-prefect"[:32],
            port=PREFECT_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=inputs.vpc_id,
            health_check={"path": "/api/health", "matcher": "200", "interval": 30},
            tags=tags(config, "prefect-tg"),
            opts=child(self),
        )
        # The UI shares the API's load balancer (one ALB per stack): its own certificate on the
        # listener (SNI), and a rule for its host name.
        certificate = aws.lb.ListenerCertificate(
            f"{name}-ui-certificate",
            listener_arn=inputs.listener.arn,
            certificate_arn=validated_certificate(
                self, f"{name}-certificate", config, prefect_domain
            ),
            opts=child(self),
        )
        rule = aws.lb.ListenerRule(
            f"{name}-ui-https",
            listener_arn=inputs.listener.arn,
            priority=20,
            conditions=[{"host_header": {"values": [prefect_domain]}}],
            tags=tags(config, "prefect-route"),
            opts=child(self, depends_on=[certificate]),
            actions=[
                {
                    "type": "authenticate-cognito",
                    "order": 1,
                    "authenticate_cognito": {
                        "user_pool_arn": pool.arn,
                        "user_pool_client_id": client.id,
                        "user_pool_domain": domain.domain,
                        "on_unauthenticated_request": "authenticate",
                    },
                },
                {"type": "forward", "order": 2, "target_group_arn": target_group.arn},
            ],
        )
        balancer = inputs.balancer
        alias_records(
            self, f"{name}-ui", config, prefect_domain, balancer.dns_name, balancer.zone_id
        )
        return target_group, rule

    def _task(
        self,
        purpose: str,
        definitions: pulumi.Output[list[dict[str, Any]]],
        execution: aws.iam.Role,
        task_role: aws.iam.Role,
        cpu: str,
        memory: str,
    ) -> aws.ecs.TaskDefinition:
        return aws.ecs.TaskDefinition(
            f"{self._name}-{purpose}",
            family=f"{self._config.name_prefix}-{purpose}",
            cpu=cpu,
            memory=memory,
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=execution.arn,
            task_role_arn=task_role.arn,
            container_definitions=containers.container_definitions(definitions),
            tags=tags(self._config, purpose),
            opts=child(self),
        )

    def _service(
        self,
        purpose: str,
        task: aws.ecs.TaskDefinition,
        service_connect: Any,
        load_balancers: Any = None,
        after: Sequence[pulumi.Resource] = (),
    ) -> aws.ecs.Service:
        return aws.ecs.Service(
            f"{self._name}-{purpose}",
            name=purpose,
            cluster=self._inputs.cluster_arn,
            task_definition=task.arn,
            desired_count=1,
            launch_type="FARGATE",
            network_configuration={
                "subnets": list(self._inputs.private_subnet_ids),
                "security_groups": [self._inputs.worker_security_group_id],
                "assign_public_ip": False,
            },
            load_balancers=load_balancers,
            service_connect_configuration=service_connect,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            wait_for_steady_state=True,  # a release that never gets healthy fails `pulumi up`
            tags=tags(self._config, purpose),
            # ECS rejects a service whose target group has no load balancer yet.
            opts=child(self, depends_on=list(after)),
        )

    def _server_service(
        self,
        namespace: aws.servicediscovery.HttpNamespace,
        target_group: aws.lb.TargetGroup,
        listener: pulumi.Resource,
        execution: aws.iam.Role,
        prefect_domain: str,
        image: pulumi.Output[str],
    ) -> None:
        config, inputs = self._config, self._inputs
        server_role = self._role("prefect-server", "Prefect server: no AWS access needed")

        def definitions(values: list[Any]) -> list[dict[str, Any]]:
            image_uri, secret_arn, host, log_group = values
            db_refs = containers.database_secret_refs(secret_arn)
            logs = containers.log_configuration(log_group, config.region, "prefect")
            # Prefect keeps its own database on the RDS instance; this one-shot container
            # creates it if missing (idempotent) before the server starts.
            create_db = {
                "name": "create-database",
                "image": image_uri,
                "essential": False,
                # A constant statement (no input), run once per task start.
                "command": [
                    "sh",
                    "-c",
                    f"psql -tc \"SELECT 1 FROM pg_database WHERE datname='{PREFECT_DATABASE}'\" "  # noqa: S608
                    f"| grep -q 1 || psql -c 'CREATE DATABASE {PREFECT_DATABASE}'",
                ],
                # verify-full: the server's certificate must chain to the RDS CA and name host.
                "environment": containers.env_list(
                    {
                        "PGHOST": host,
                        "PGPORT": "5432",
                        "PGDATABASE": "postgres",
                        "PGSSLMODE": "verify-full",
                        "PGSSLROOTCERT": containers.RDS_CA_BUNDLE,
                    }
                ),
                "secrets": containers.secret_list(
                    {"PGUSER": db_refs["DATABASE_USER"], "PGPASSWORD": db_refs["DATABASE_PASSWORD"]}
                ),
                "logConfiguration": logs,
            }
            server = {
                "name": "prefect-server",
                "image": image_uri,
                "essential": True,
                "command": [
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    "0.0.0.0",  # noqa: S104 - the task's own ENI; only the ALB's group may connect
                    "--port",
                    str(PREFECT_PORT),
                ],
                "portMappings": [
                    {"name": "prefect", "containerPort": PREFECT_PORT, "protocol": "tcp"}
                ],
                "dependsOn": [{"containerName": "create-database", "condition": "SUCCESS"}],
                "environment": containers.env_list(
                    {
                        "PREFECT_SERVER_DATABASE_DRIVER": "postgresql+asyncpg",
                        "PREFECT_SERVER_DATABASE_HOST": host,
                        "PREFECT_SERVER_DATABASE_PORT": "5432",
                        "PREFECT_SERVER_DATABASE_NAME": PREFECT_DATABASE,
                        # Prefect 3.9 then verifies the certificate and host name (asyncpg
                        # with an SSL context), against this bundle instead of the system's.
                        "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_ENABLED": "true",
                        "PREFECT_SERVER_DATABASE_SQLALCHEMY_CONNECT_ARGS_TLS_CA_FILE": (
                            containers.RDS_CA_BUNDLE
                        ),
                        "PREFECT_UI_API_URL": f"https://{prefect_domain}/api",
                    }
                ),
                "secrets": containers.secret_list(
                    {
                        "PREFECT_SERVER_DATABASE_USER": db_refs["DATABASE_USER"],
                        "PREFECT_SERVER_DATABASE_PASSWORD": db_refs["DATABASE_PASSWORD"],
                    }
                ),
                "logConfiguration": logs,
            }
            return [create_db, server]

        task = self._task(
            "prefect-server",
            pulumi.Output.all(
                image, inputs.database_secret_arn, inputs.database_host, inputs.server_log_group
            ).apply(definitions),
            execution,
            server_role,
            cpu=str(config.prefect_server_cpu),
            memory=str(config.prefect_server_memory_mb),
        )
        self._service(
            "prefect-server",
            task,
            {
                "enabled": True,
                "namespace": namespace.arn,
                "services": [
                    {
                        "port_name": "prefect",
                        "client_alias": [{"port": PREFECT_PORT, "dns_name": "prefect-server"}],
                    }
                ],
            },
            load_balancers=[
                {
                    "target_group_arn": target_group.arn,
                    "container_name": "prefect-server",
                    "container_port": PREFECT_PORT,
                }
            ],
            after=[listener],
        )

    def _worker_service(
        self,
        namespace: aws.servicediscovery.HttpNamespace,
        execution: aws.iam.Role,
        image: pulumi.Output[str],
    ) -> None:
        config, inputs = self._config, self._inputs

        def definitions(values: list[Any]) -> list[dict[str, Any]]:
            image, log_group, secret_arn, host, bucket, key_arn, stripe_arn = values[:7]
            reports_bucket, topic_arn, git_token_arn = values[7:]
            return [
                {
                    "name": "prefect-worker",
                    "image": image,
                    "essential": True,
                    # The bootstrap builds DATABASE_URL from the RDS-managed secret first.
                    "command": containers.with_bootstrap(
                        ["prefect", "worker", "start", "--pool", WORK_POOL, "--type", "process"]
                    ),
                    "environment": containers.env_list(
                        {
                            "PREFECT_API_URL": f"http://prefect-server:{PREFECT_PORT}/api",
                            "SLIPWAY_HOME": FLOWS_HOME,
                            "DATABASE_HOST": host,
                            "DATABASE_NAME": DATABASE_NAME,
                            "BACKUP_BUCKET": bucket,
                            "BACKUP_KMS_KEY_ID": key_arn,
                            "FLOWS_REPORTS_BUCKET": reports_bucket,
                            "FLOWS_ALERTS_TOPIC_ARN": topic_arn,
                            "FLOWS_STACK": config.name_prefix,
                            # Failure notices link to the run in the UI.
                            "PREFECT_UI_URL": self.prefect_ui_url,
                            "TECH_DEBT_REPO_URL": f"https://github.com/{config.github_repository}.git",
                            "TECH_DEBT_GIT_TOKEN_SECRET_ARN": git_token_arn,
                            # Where tech-debt keeps its tracking issue (same token).
                            "GITHUB_REPOSITORY": config.github_repository,
                        }
                    ),
                    "secrets": containers.secret_list(
                        {
                            **containers.database_secret_refs(secret_arn),
                            "STRIPE_SECRET_KEY": stripe_arn,
                        }
                    ),
                    "logConfiguration": containers.log_configuration(
                        log_group, config.region, "worker"
                    ),
                }
            ]

        task = self._task(
            "prefect-worker",
            pulumi.Output.all(
                image,
                inputs.worker_log_group,
                inputs.database_secret_arn,
                inputs.database_host,
                inputs.backup_bucket_name,
                inputs.kms_key_arn,
                inputs.stripe_secret_arn,
                inputs.reports_bucket_name,
                inputs.alerts_topic_arn,
                self.git_token_secret.arn,
            ).apply(definitions),
            execution,
            self.flows_role,
            cpu=str(config.worker_cpu),
            memory=str(config.worker_memory_mb),
        )
        self._service("prefect-worker", task, {"enabled": True, "namespace": namespace.arn})

    def _registration_task(
        self, execution: aws.iam.Role, image: pulumi.Output[str]
    ) -> aws.ecs.TaskDefinition:
        """`python -m flows deploy`, run once per deploy by the pipeline (flows_registration)."""
        config, inputs = self._config, self._inputs
        registrar = self._role("flows-registration", "Registers Prefect deployments: no AWS access")
        definitions = pulumi.Output.all(
            image, inputs.worker_log_group, inputs.backup_bucket_name, inputs.kms_key_arn
        ).apply(
            lambda values: [
                registration_container(
                    image=values[0],
                    image_tag=config.image_tag or "",
                    log_group=values[1],
                    region=config.region,
                    backup_bucket=values[2],
                    kms_key_arn=values[3],
                )
            ]
        )
        return self._task(
            "register-flows", definitions, execution, registrar, cpu="256", memory="512"
        )


def _short_id(pool_id: str) -> str:
    # Cognito domains are global; the pool id's random suffix keeps ours unique.
    return pool_id.rsplit("_", 1)[-1].lower()[:8]
