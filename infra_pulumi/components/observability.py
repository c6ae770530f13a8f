"""Amazon Managed Prometheus (rules + alert manager -> SNS -> Slack via AWS Chatbot / e-mail),
Managed Grafana (dashboards only). Staging and prod; dev stacks have neither (logs.py only)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra_pulumi import alerting
from infra_pulumi.alert_messages import AlertLinks
from infra_pulumi.components._shared import child, document, service_trust, tags
from infra_pulumi.config import StackConfig


class Observability(pulumi.ComponentResource):
    workspace: aws.amp.Workspace
    grafana: aws.grafana.Workspace
    remote_write_url: pulumi.Output[str]
    page_topic: aws.sns.Topic

    def __init__(
        self,
        name: str,
        config: StackConfig,
        account_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:observability:Observability", name, None, opts)
        self.workspace = aws.amp.Workspace(
            f"{name}-prometheus",
            alias=config.name_prefix,
            tags=tags(config, "amp"),
            opts=child(self),
        )
        self.remote_write_url = self.workspace.prometheus_endpoint.apply(
            lambda endpoint: f"{endpoint.rstrip('/')}/api/v1/remote_write"
        )

        page_topic = self.page_topic = self._topic(name, config, "pages", account_id)
        ticket_topic = self._topic(name, config, "tickets", account_id)
        aws.sns.TopicSubscription(
            f"{name}-tickets-email",
            topic=ticket_topic.arn,
            protocol="email",
            endpoint=config.alert_email,
            opts=child(self),
        )
        chatbot_role = aws.iam.Role(
            f"{name}-chatbot",
            assume_role_policy=service_trust("chatbot.amazonaws.com"),
            description="AWS Chatbot posting Prometheus pages to Slack",
            tags=tags(config, "chatbot"),
            opts=child(self),
        )
        aws.chatbot.SlackChannelConfiguration(
            f"{name}-slack-pages",
            configuration_name=f"{config.name_prefix}-pages",
            iam_role_arn=chatbot_role.arn,
            slack_team_id=config.slack_team_id,
            slack_channel_id=config.slack_channel_id,
            sns_topic_arns=[page_topic.arn],
            guardrail_policy_arns=["arn:aws:iam::aws:policy/ReadOnlyAccess"],
            logging_level="ERROR",
            opts=child(self),
        )
        for rule_file in alerting.load_rule_files():
            aws.amp.RuleGroupNamespace(
                f"{name}-rules-{rule_file.name}",
                name=rule_file.name,
                workspace_id=self.workspace.id,
                data=rule_file.text,
                opts=child(self),
            )

        grafana_role = aws.iam.Role(
            f"{name}-grafana",
            assume_role_policy=service_trust("grafana.amazonaws.com"),
            description="Managed Grafana reading AMP and CloudWatch",
            tags=tags(config, "grafana"),
            opts=child(self),
        )
        for policy in ("AmazonPrometheusQueryAccess", "service-role/AmazonGrafanaCloudWatchAccess"):
            aws.iam.RolePolicyAttachment(
                f"{name}-grafana-{policy.rsplit('/', 1)[-1]}",
                role=grafana_role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=child(self),
            )
        self.grafana = aws.grafana.Workspace(
            f"{name}-grafana",
            name=config.name_prefix,
            account_access_type="CURRENT_ACCOUNT",
            authentication_providers=["AWS_SSO"],
            permission_type="CUSTOMER_MANAGED",
            role_arn=grafana_role.arn,
            data_sources=["PROMETHEUS", "CLOUDWATCH"],
            grafana_version="10.4",
            tags=tags(config, "grafana"),
            opts=child(self),
        )
        # IAM Identity Center groups get their Grafana role; without one nobody can sign in.
        for role, group_ids in (
            ("ADMIN", config.grafana_admin_group_ids),
            ("VIEWER", config.grafana_viewer_group_ids),
        ):
            if group_ids:
                aws.grafana.RoleAssociation(
                    f"{name}-grafana-{role.lower()}s",
                    role=role,
                    group_ids=list(group_ids),
                    workspace_id=self.grafana.id,
                    opts=child(self),
                )
        self.grafana_url = self.grafana.endpoint.apply(lambda endpoint: f"https://{endpoint}")
        # Alerts are evaluated and routed by AMP alone; Grafana only shows the dashboards
        # their messages link to.
        aws.amp.AlertManagerDefinition(
            f"{name}-alertmanager",
            workspace_id=self.workspace.id,
            definition=pulumi.Output.all(page_topic.arn, ticket_topic.arn, self.grafana_url).apply(
                lambda values: alerting.alertmanager_definition(
                    config.region,
                    values[0],
                    values[1],
                    AlertLinks.for_stack(config.name_prefix, config.github_repository, values[2]),
                )
            ),
            opts=child(self),
        )
        self.register_outputs(
            {
                "prometheusEndpoint": self.workspace.prometheus_endpoint,
                "grafanaUrl": self.grafana_url,
            }
        )

    def _topic(
        self, name: str, config: StackConfig, purpose: str, account_id: pulumi.Input[str]
    ) -> aws.sns.Topic:
        topic = aws.sns.Topic(
            f"{name}-{purpose}",
            name=f"{config.name_prefix}-alerts-{purpose}",
            tags=tags(config, f"alerts-{purpose}"),
            opts=child(self),
        )
        aws.sns.TopicPolicy(
            f"{name}-{purpose}",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account_id).apply(
                lambda values: document(
                    [
                        {
                            "Sid": "PrometheusAlertManager",
                            "Effect": "Allow",
                            "Principal": {"Service": "aps.amazonaws.com"},
                            "Action": ["sns:Publish", "sns:GetTopicAttributes"],
                            "Resource": values[0],
                            "Condition": {"StringEquals": {"AWS:SourceAccount": values[1]}},
                        }
                    ]
                )
            ),
            opts=child(self),
        )
        return topic
