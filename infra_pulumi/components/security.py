"""Security groups: who may talk to whom. Every rule is a separate, described resource."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import ROLE_TAG, child, tags
from infra_pulumi.config import StackConfig

API_PORT = 8000
PREFECT_PORT = 4200
POSTGRES_PORT = 5432
REDIS_PORT = 6379
HTTPS_PORT = 443
CLOUDFRONT_PREFIX_LIST = "com.amazonaws.global.cloudfront.origin-facing"


@dataclass(frozen=True)
class _Rule:
    description: str
    port: int
    source_group: aws.ec2.SecurityGroup | None = None
    cidr_ipv4: str | None = None
    cidr_ipv6: str | None = None
    prefix_list_id: pulumi.Input[str] | None = None


class SecurityGroups(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        vpc_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:security:SecurityGroups", name, None, opts)
        self._name = name
        self._config = config
        self._vpc_id = vpc_id
        self._roles: dict[int, str] = {}

        # Roles are read by the policy pack (DB and cache reachable only from app/worker).
        self.api_entry = self._group(
            "api-entry", "API load balancer, reachable only from CloudFront"
        )
        self.public_entry = self._group("public-entry", "Prefect UI load balancer (Cognito auth)")
        self.app = self._group("app", "API tasks and the API Lambda function")
        self.worker = self._group("worker", "Prefect server and worker tasks")
        self.bastion = self._group("bastion", "SSM-only bastion for database access")
        self.database = self._group("database", "RDS PostgreSQL")
        self.cache = self._group("cache", "ElastiCache Redis")
        # Interface endpoints of stacks without a NAT gateway (dev): AWS APIs from the API.
        self.endpoints: aws.ec2.SecurityGroup | None = None
        if not config.has_nat:
            self.endpoints = self._group("endpoints", "VPC interface endpoints of AWS APIs")
            self._ingress(
                self.endpoints,
                _Rule("HTTPS from the API to AWS APIs", HTTPS_PORT, source_group=self.app),
                # The database credentials' rotation function runs in the worker group.
                _Rule("HTTPS from workers to AWS APIs", HTTPS_PORT, source_group=self.worker),
            )

        cloudfront = aws.ec2.get_managed_prefix_list_output(name=CLOUDFRONT_PREFIX_LIST)
        self._ingress(
            self.api_entry,
            _Rule(
                "HTTPS from CloudFront origin-facing servers",
                HTTPS_PORT,
                prefix_list_id=cloudfront.id,
            ),
        )
        self._ingress(
            self.public_entry,
            _Rule(
                "HTTPS from the internet to the Prefect UI (Cognito)",
                HTTPS_PORT,
                cidr_ipv4="0.0.0.0/0",
            ),
            _Rule("HTTPS over IPv6 to the Prefect UI (Cognito)", HTTPS_PORT, cidr_ipv6="::/0"),
        )
        self._egress(self.api_entry, _Rule("to API tasks", API_PORT, source_group=self.app))
        self._egress(
            self.public_entry,
            _Rule("to the Prefect server", PREFECT_PORT, source_group=self.worker),
            # authenticate-cognito: the ALB itself calls the Cognito token endpoint.
            _Rule("HTTPS to the Cognito identity provider", HTTPS_PORT, cidr_ipv4="0.0.0.0/0"),
        )

        self._ingress(
            self.app,
            _Rule("API traffic from the API load balancer", API_PORT, source_group=self.api_entry),
        )
        self._ingress(
            self.worker,
            _Rule(
                "Prefect UI/API from its load balancer",
                PREFECT_PORT,
                source_group=self.public_entry,
            ),
            _Rule(
                "Prefect worker and flow runs to the Prefect server",
                PREFECT_PORT,
                source_group=self.worker,
            ),
        )
        for group in (self.app, self.worker):
            self._egress(
                group,
                _Rule("HTTPS to AWS APIs, ECR and Stripe", HTTPS_PORT, cidr_ipv4="0.0.0.0/0"),
                _Rule("PostgreSQL", POSTGRES_PORT, source_group=self.database),
                _Rule("Redis", REDIS_PORT, source_group=self.cache),
            )
        self._egress(
            self.worker,
            _Rule("Prefect worker to the Prefect server", PREFECT_PORT, source_group=self.worker),
        )
        self._egress(
            self.bastion,
            _Rule("HTTPS to SSM endpoints", HTTPS_PORT, cidr_ipv4="0.0.0.0/0"),
            _Rule(
                "PostgreSQL for operators' port forwarding",
                POSTGRES_PORT,
                source_group=self.database,
            ),
        )
        self._ingress(
            self.database,
            _Rule("PostgreSQL from API tasks", POSTGRES_PORT, source_group=self.app),
            _Rule(
                "PostgreSQL from Prefect server and flows", POSTGRES_PORT, source_group=self.worker
            ),
            _Rule("PostgreSQL from the SSM bastion", POSTGRES_PORT, source_group=self.bastion),
        )
        self._ingress(
            self.cache,
            _Rule("Redis from API tasks", REDIS_PORT, source_group=self.app),
            _Rule("Redis from flows", REDIS_PORT, source_group=self.worker),
        )
        self.register_outputs(
            {
                "appSecurityGroupId": self.app.id,
                "workerSecurityGroupId": self.worker.id,
                "databaseSecurityGroupId": self.database.id,
                "cacheSecurityGroupId": self.cache.id,
            }
        )

    def _group(self, role: str, description: str) -> aws.ec2.SecurityGroup:
        group = aws.ec2.SecurityGroup(
            f"{self._name}-{role}",
            name=f"{self._config.name_prefix}-{role}",
            description=description,
            vpc_id=self._vpc_id,
            # No inline rules: each rule below is its own resource so it can be described.
            tags=tags(self._config, role, **{ROLE_TAG: role}),
            opts=child(self),
        )
        self._roles[id(group)] = role
        return group

    def _ingress(self, group: aws.ec2.SecurityGroup, *rules: _Rule) -> None:
        for rule in rules:
            aws.vpc.SecurityGroupIngressRule(**self._rule_args(group, "in", rule))

    def _egress(self, group: aws.ec2.SecurityGroup, *rules: _Rule) -> None:
        for rule in rules:
            aws.vpc.SecurityGroupEgressRule(**self._rule_args(group, "out", rule))

    def _rule_args(self, group: aws.ec2.SecurityGroup, direction: str, rule: _Rule) -> Any:
        """One TCP port, one described peer: the same shape for ingress and egress rules."""
        return {
            "resource_name": f"{self._name}-{self._roles[id(group)]}-{direction}-"
            f"{_slug(rule.description)}",
            "security_group_id": group.id,
            "description": rule.description,
            "ip_protocol": "tcp",
            "from_port": rule.port,
            "to_port": rule.port,
            "referenced_security_group_id": rule.source_group.id if rule.source_group else None,
            "cidr_ipv4": rule.cidr_ipv4,
            "cidr_ipv6": rule.cidr_ipv6,
            "prefix_list_id": rule.prefix_list_id,
            "opts": child(self),
        }


def _slug(text: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return "-".join(words[:6])
