"""The API: ECR image, then ECS Fargate behind an ALB (prod) or Lambda with a function URL
(staging), chosen by `slipway:apiRuntime`. Secrets arrive from Secrets Manager by ARN."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra_pulumi.components import _containers as containers
from infra_pulumi.components._certificates import alias_records, validated_certificate
from infra_pulumi.components._shared import (
    TLS_POLICY,
    child,
    output_document,
    read_secrets_document,
    service_trust,
    tags,
)
from infra_pulumi.components.api_containers import API_PORT, api_definitions
from infra_pulumi.components.cdn import ORIGIN_VERIFY_HEADER
from infra_pulumi.config import StackConfig

# A function instance serves one request at a time: one connection kept between invocations,
# two more while a request holds sessions side by side (api/db.py PoolLimits). Reserved
# concurrency times their sum is the function's share of max_connections (policy rule
# lambda-database-connection-budget).
LAMBDA_DATABASE_POOL = {"DATABASE_POOL_SIZE": "1", "DATABASE_MAX_OVERFLOW": "2"}


@dataclass(frozen=True)
class ComputeInputs:
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    app_security_group_id: pulumi.Input[str]
    # the load balancer's groups: CloudFront's entry, plus the Prefect UI's when it shares it
    entry_security_group_ids: Sequence[pulumi.Input[str]]
    kms_key_arn: pulumi.Input[str]
    # env name -> Secrets Manager ARN
    secret_arns: Mapping[str, pulumi.Input[str]]
    # The RDS-managed master secret: migrations only.
    database_secret_arn: pulumi.Input[str]
    # The API's own role (DML only), read by the API at run time and re-read on refusal.
    app_database_secret_arn: pulumi.Input[str]
    database_host: pulumi.Input[str]
    database_name: str
    log_group_name: pulumi.Input[str]
    adot_log_group_name: pulumi.Input[str]
    # Amazon Managed Prometheus; None on stacks without metrics (dev)
    remote_write_url: pulumi.Input[str] | None
    workspace_arn: pulumi.Input[str] | None
    origin_verify: pulumi.Input[str]
    # EMAIL_* settings of the SES transport, and the one SES permission the API holds.
    email_environment: Mapping[str, pulumi.Input[str]]
    email_send_policy: pulumi.Input[str]


class Compute(pulumi.ComponentResource):
    repository: aws.ecr.Repository
    cluster: aws.ecs.Cluster
    execution_role: aws.iam.Role
    api_origin_domain: pulumi.Output[str]
    api_url: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        inputs: ComputeInputs,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:compute:Compute", name, None, opts)
        self._name = name
        self._config = config
        self._inputs = inputs
        self.repository = aws.ecr.Repository(
            f"{name}-api",
            name=f"{config.name_prefix}-api",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": inputs.kms_key_arn}],
            force_delete=not config.is_prod,
            tags=tags(config, "ecr-api"),
            opts=child(self),
        )
        # The cluster also runs the Prefect server and worker (flows_worker), in both stacks.
        self.cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=config.name_prefix,
            settings=[{"name": "containerInsights", "value": "enhanced"}],
            tags=tags(config, "ecs"),
            opts=child(self),
        )
        # The migration task also starts through this role: the master and app role secrets.
        secret_resources = [
            *inputs.secret_arns.values(),
            inputs.database_secret_arn,
            inputs.app_database_secret_arn,
        ]
        self.execution_role = aws.iam.Role(
            f"{name}-execution",
            assume_role_policy=service_trust("ecs-tasks.amazonaws.com"),
            description="ECS agent: pull images, write logs, read the API's secrets",
            tags=tags(config, "ecs-execution"),
            opts=child(self),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-execution-managed",
            role=self.execution_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-execution-secrets",
            role=self.execution_role.name,
            policy=read_secrets_document(secret_resources, inputs.kms_key_arn),
            opts=child(self),
        )
        image = (
            pulumi.Output.concat(self.repository.repository_url, ":", config.image_tag)
            if config.image_tag
            else None
        )
        self.migration_task_family: pulumi.Output[str] = pulumi.Output.from_input("")
        self.function: aws.lambda_.Function | None = None
        self.balancer: aws.lb.LoadBalancer | None = None
        self.listener: aws.lb.Listener | None = None
        if config.api_runtime == "ecs" or config.shared_services:
            # One ALB per stack: the API (ECS) and, by host name, the Prefect UI.
            self.balancer, self.listener = self._load_balancer()
        if image is None:
            # First deploy: the repository must exist before CI can push the first image.
            pulumi.log.warn("slipway:imageTag is not set: the API is not deployed yet")
            self.api_origin_domain = pulumi.Output.from_input(f"origin.{config.domain_name}")
        else:
            self.migration_task_family = self._migration_task(image).family
            if config.api_runtime == "ecs":
                self.api_origin_domain = self._ecs_service(image)
            else:
                self.api_origin_domain = self._lambda_function(image)
        # `aws ecs run-task --network-configuration` for one-off tasks (migrations). Without a
        # NAT gateway (dev) the task pulls its image and reads its secrets over a public
        # address in a public subnet; its security group still admits no inbound traffic.
        self.run_task_network = containers.run_task_network(
            inputs.private_subnet_ids if config.has_nat else inputs.public_subnet_ids,
            inputs.app_security_group_id,
            public_ip=not config.has_nat,
        )
        self.api_url = pulumi.Output.from_input(f"https://{config.domain_name}")
        self.register_outputs(
            {
                "repositoryUrl": self.repository.repository_url,
                "clusterName": self.cluster.name,
                "apiOriginDomain": self.api_origin_domain,
            }
        )

    def allow_cloudfront(self, distribution_arn: pulumi.Input[str]) -> None:
        """The Lambda runtime: only this distribution may invoke the function (URL)."""
        if self.function is None:
            return
        grants: dict[str, dict[str, Any]] = {
            "url": {"action": "lambda:InvokeFunctionUrl", "function_url_auth_type": "AWS_IAM"},
            # Function URLs also check lambda:InvokeFunction, limited to URL invocations.
            "invoke": {"action": "lambda:InvokeFunction", "invoked_via_function_url": True},
        }
        for purpose, grant in grants.items():
            aws.lambda_.Permission(
                f"{self._name}-cloudfront-{purpose}",
                function=self.function.name,
                principal="cloudfront.amazonaws.com",
                source_arn=distribution_arn,
                **grant,
                opts=child(self),
            )

    def _plain_env(self) -> dict[str, pulumi.Input[str]]:
        config = self._config
        return {
            # Dev stacks too: the API refuses a missing or insecure value as in staging, bar
            # what the stack lacks by design (_dev_env).
            "APP_ENV": "production" if config.is_prod else "staging",
            "DATABASE_HOST": self._inputs.database_host,
            "DATABASE_NAME": self._inputs.database_name,
            "DATABASE_PORT": "5432",
            "CORS_ORIGINS": f"https://{config.domain_name}",
            # CloudFront and the ALB both live outside the task; only the VPC's ALB is trusted.
            "TRUSTED_PROXIES": config.vpc_cidr,
            **self._inputs.email_environment,
            **self._dev_env(),
        }

    def _dev_env(self) -> dict[str, pulumi.Input[str]]:
        """What a dev stack declares it does without, so staging's checks let its API start."""
        config = self._config
        if not config.is_dev:
            return {}
        # No cache (program.build adds REDIS_URL with the shared services only): each function
        # instance counts alone, so a quota holds per instance (at most
        # slipway:lambdaReservedConcurrency of them), which a developer's stack can afford.
        env: dict[str, pulumi.Input[str]] = {"RATE_LIMITS_SHARED": "false"}
        if not config.has_nat:
            # Without a NAT gateway the function reaches Secrets Manager only (its one VPC
            # endpoint), never SES: a verification link could never arrive, so requiring one
            # would lock every new user out.
            env["REQUIRE_VERIFIED_EMAIL"] = "false"
        return env

    def _api_env(self) -> dict[str, pulumi.Input[str]]:
        """The API reads its database user from the secret at connection time (rotation) and
        verifies RDS's certificate with the bundle in the image."""
        return {
            **self._plain_env(),
            "DATABASE_SECRET_ARN": self._inputs.app_database_secret_arn,
            "DATABASE_CA_FILE": containers.RDS_CA_BUNDLE,
        }

    def _migration_env(self) -> dict[str, pulumi.Input[str]]:
        return {**self._plain_env(), "DATABASE_CA_FILE": containers.RDS_CA_BUNDLE}

    def _secret_refs(self) -> pulumi.Output[dict[str, str]]:
        """The API's secrets; no database credentials (those are read at run time)."""
        return pulumi.Output.all(**self._inputs.secret_arns)

    def _migration_secret_refs(self) -> pulumi.Output[dict[str, str]]:
        """Migrations connect as the master user and provision the API's role."""
        inputs = self._inputs
        return pulumi.Output.all(
            inputs.database_secret_arn, inputs.app_database_secret_arn, dict(inputs.secret_arns)
        ).apply(
            lambda values: {
                **containers.database_secret_refs(values[0]),
                "DATABASE_APP_USER": f"{values[1]}:username::",
                "DATABASE_APP_PASSWORD": f"{values[1]}:password::",
                **values[2],
            }
        )

    def _migration_task(self, image: pulumi.Output[str]) -> aws.ecs.TaskDefinition:
        """`alembic upgrade head` as a one-off Fargate task with the API's image and settings,
        run by the deploy workflow before the new API version takes traffic (both runtimes)."""
        config, inputs = self._config, self._inputs

        def definitions(values: list[Any]) -> list[dict[str, Any]]:
            image_uri, env, secrets, log_group = values
            return [
                {
                    "name": "migrate",
                    "image": image_uri,
                    "essential": True,
                    "command": containers.with_bootstrap(["alembic", "upgrade", "head"]),
                    "environment": containers.env_list(env),
                    "secrets": containers.secret_list(secrets),
                    "logConfiguration": containers.log_configuration(
                        log_group, config.region, "migrate"
                    ),
                }
            ]

        return aws.ecs.TaskDefinition(
            f"{self._name}-migrate",
            family=f"{config.name_prefix}-migrate",
            cpu="256",
            memory="512",
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            execution_role_arn=self.execution_role.arn,
            container_definitions=containers.container_definitions(
                pulumi.Output.all(
                    image,
                    pulumi.Output.all(**self._migration_env()),
                    self._migration_secret_refs(),
                    inputs.log_group_name,
                ).apply(definitions)
            ),
            tags=tags(config, "migrate"),
            opts=child(self),
        )

    def _load_balancer(self) -> tuple[aws.lb.LoadBalancer, aws.lb.Listener]:
        name, config, inputs = self._name, self._config, self._inputs
        origin_domain = f"origin.{config.domain_name}"
        balancer = aws.lb.LoadBalancer(
            f"{name}-api-alb",
            name=f"{config.name_prefix}-api"[:32],
            load_balancer_type="application",
            internal=False,
            subnets=list(inputs.public_subnet_ids),
            security_groups=list(inputs.entry_security_group_ids),
            drop_invalid_header_fields=True,
            enable_deletion_protection=config.is_prod,
            idle_timeout=60,
            tags=tags(config, "api-alb"),
            opts=child(self),
        )
        certificate_arn = validated_certificate(
            self, f"{name}-origin-certificate", config, origin_domain
        )
        listener = aws.lb.Listener(
            f"{name}-api-https",
            load_balancer_arn=balancer.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=certificate_arn,
            # Only rules forward: the API for CloudFront's requests (origin secret), the
            # Prefect UI by host name. Anything else never reaches a target.
            default_actions=[
                {
                    "type": "fixed-response",
                    "fixed_response": {
                        "content_type": "text/plain",
                        "message_body": "Not found",
                        "status_code": "404",
                    },
                }
            ],
            opts=child(self),
        )
        alias_records(
            self, f"{name}-origin", config, origin_domain, balancer.dns_name, balancer.zone_id
        )
        return balancer, listener

    def _ecs_service(self, image: pulumi.Output[str]) -> pulumi.Output[str]:
        name, config, inputs = self._name, self._config, self._inputs
        if self.listener is None or inputs.workspace_arn is None or inputs.remote_write_url is None:
            raise ValueError("the ECS runtime needs the load balancer and a metrics workspace")
        origin_domain = f"origin.{config.domain_name}"
        task_role = aws.iam.Role(
            f"{name}-api-task",
            assume_role_policy=service_trust("ecs-tasks.amazonaws.com"),
            description="API task: its database secret, sending email through SES; the ADOT "
            "sidecar writes metrics to AMP",
            tags=tags(config, "api-task"),
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-api-task-database",
            role=task_role.name,
            policy=read_secrets_document([inputs.app_database_secret_arn], inputs.kms_key_arn),
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-api-task-email",
            role=task_role.name,
            policy=inputs.email_send_policy,
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-api-task-amp",
            role=task_role.name,
            policy=output_document(
                [
                    {
                        "Effect": "Allow",
                        "Action": "aps:RemoteWrite",
                        "Resource": inputs.workspace_arn,
                    }
                ]
            ),
            opts=child(self),
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-api",
            name=f"{config.name_prefix}-api"[:32],
            port=API_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=inputs.vpc_id,
            deregistration_delay=30,
            health_check={"path": "/healthz", "matcher": "200", "interval": 15},
            tags=tags(config, "api-tg"),
            opts=child(self),
        )
        # The API answers only requests carrying CloudFront's origin secret: the load balancer
        # also serves the Prefect UI to the internet, and nobody may reach the API around
        # CloudFront and its WAF.
        route = aws.lb.ListenerRule(
            f"{name}-api-from-cloudfront",
            listener_arn=self.listener.arn,
            priority=10,
            conditions=[
                {
                    "http_header": {
                        "http_header_name": ORIGIN_VERIFY_HEADER,
                        "values": [pulumi.Output.secret(inputs.origin_verify)],
                    }
                }
            ],
            actions=[{"type": "forward", "target_group_arn": target_group.arn}],
            tags=tags(config, "api-route"),
            opts=child(self),
        )

        definitions = pulumi.Output.all(
            image,
            pulumi.Output.all(**self._api_env()),
            self._secret_refs(),
            inputs.log_group_name,
            inputs.adot_log_group_name,
            inputs.remote_write_url,
        ).apply(
            lambda v: api_definitions(
                v[0], v[1], v[2], v[3], v[4], v[5], config.region, config.stack
            )
        )
        task = aws.ecs.TaskDefinition(
            f"{name}-api",
            family=f"{config.name_prefix}-api",
            cpu=str(config.api_cpu),
            memory=str(config.api_memory_mb),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": "X86_64"},
            execution_role_arn=self.execution_role.arn,
            task_role_arn=task_role.arn,
            container_definitions=containers.container_definitions(definitions),
            tags=tags(config, "api-task"),
            opts=child(self),
        )
        service = aws.ecs.Service(
            f"{name}-api",
            name="api",
            cluster=self.cluster.arn,
            task_definition=task.arn,
            desired_count=config.api_min_tasks,
            launch_type="FARGATE",
            network_configuration={
                "subnets": list(inputs.private_subnet_ids),
                "security_groups": [inputs.app_security_group_id],
                "assign_public_ip": False,
            },
            load_balancers=[
                {
                    "target_group_arn": target_group.arn,
                    "container_name": "api",
                    "container_port": API_PORT,
                }
            ],
            deployment_circuit_breaker={"enable": True, "rollback": True},
            # `pulumi up` fails when the release never becomes healthy (the circuit breaker
            # rolls it back); otherwise a crash-looping release would deploy green.
            wait_for_steady_state=True,
            health_check_grace_period_seconds=30,
            propagate_tags="SERVICE",
            tags=tags(config, "api-service"),
            # Autoscaling owns the task count after creation. ECS rejects a service whose
            # target group has no load balancer yet: wait for the listener (and its certificate).
            opts=child(self, ignore_changes=["desiredCount"], depends_on=[self.listener, route]),
        )
        scaling = aws.appautoscaling.Target(
            f"{name}-api-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", self.cluster.name, "/", service.name),
            min_capacity=config.api_min_tasks,
            max_capacity=config.api_max_tasks,
            opts=child(self),
        )
        aws.appautoscaling.Policy(
            f"{name}-api-cpu",
            name=f"{config.name_prefix}-api-cpu",
            policy_type="TargetTrackingScaling",
            service_namespace=scaling.service_namespace,
            scalable_dimension=scaling.scalable_dimension,
            resource_id=scaling.resource_id,
            target_tracking_scaling_policy_configuration={
                "target_value": config.api_target_cpu_percent,
                "scale_in_cooldown": 120,
                "scale_out_cooldown": 60,
                "predefined_metric_specification": {
                    "predefined_metric_type": "ECSServiceAverageCPUUtilization"
                },
            },
            opts=child(self),
        )
        return pulumi.Output.from_input(origin_domain)

    def _lambda_function(self, image: pulumi.Output[str]) -> pulumi.Output[str]:
        name, config, inputs = self._name, self._config, self._inputs
        role = aws.iam.Role(
            f"{name}-lambda",
            assume_role_policy=service_trust("lambda.amazonaws.com"),
            description="API Lambda: VPC networking, logs, its own secrets, sending email",
            tags=tags(config, "lambda"),
            opts=child(self),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-lambda-vpc",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-lambda-secrets",
            role=role.name,
            policy=read_secrets_document(
                [*inputs.secret_arns.values(), inputs.app_database_secret_arn], inputs.kms_key_arn
            ),
            opts=child(self),
        )
        aws.iam.RolePolicy(
            f"{name}-lambda-email",
            role=role.name,
            policy=inputs.email_send_policy,
            opts=child(self),
        )
        # Lambda has no native secret injection: the function gets the ARNs (not the values)
        # and the bootstrap resolves them at cold start with the function's role.
        secret_refs = self._secret_refs().apply(lambda refs: json.dumps(refs, sort_keys=True))
        function = aws.lambda_.Function(
            f"{name}-api",
            name=f"{config.name_prefix}-api",
            package_type="Image",
            image_uri=image,
            # The image's CMD serves uvicorn; on Lambda the runtime interface client runs the
            # Mangum handler, behind the bootstrap that resolves SECRET_ARNS at cold start.
            image_config={
                "entry_points": containers.with_bootstrap(["python", "-m", "awslambdaric"]),
                "commands": ["api.lambda_handler.handler"],
            },
            role=role.arn,
            memory_size=config.lambda_memory_mb,
            # Caps the instances, and so the connections they open to the small database.
            reserved_concurrent_executions=config.lambda_reserved_concurrency,
            timeout=30,
            kms_key_arn=inputs.kms_key_arn,
            vpc_config={
                "subnet_ids": list(inputs.private_subnet_ids),
                "security_group_ids": [inputs.app_security_group_id],
            },
            environment={
                "variables": {**self._api_env(), **LAMBDA_DATABASE_POOL, "SECRET_ARNS": secret_refs}
            },
            logging_config={
                "log_format": "JSON",
                "log_group": f"/aws/lambda/{config.name_prefix}-api",
            },
            tags=tags(config, "lambda"),
            opts=child(self),
        )
        self.function = function
        url = aws.lambda_.FunctionUrl(
            f"{name}-api",
            function_name=function.name,
            # Only IAM-signed requests: CloudFront signs them (OAC), so nobody reaches the
            # function around CloudFront and its WAF. Lambda wants the SHA-256 of PUT/POST
            # bodies in x-amz-content-sha256 from the client (docs/deploying.md).
            authorization_type="AWS_IAM",
            invoke_mode="BUFFERED",
            opts=child(self),
        )
        return url.function_url.apply(lambda value: value.removeprefix("https://").rstrip("/"))
