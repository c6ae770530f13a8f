"""Outgoing email through Amazon SES: a verified domain identity signed with Easy DKIM (the
three CNAME records in the stack's Route 53 zone), and a configuration set that requires TLS,
suppresses bounced and complaining addresses, and publishes bounce, complaint and reject
events to an SNS topic. `send_policy` is the only SES permission the API gets: send, from
this identity's one address, through this configuration set.
"""

from __future__ import annotations

import functools
from typing import Any

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import child, document, output_document, tags
from infra_pulumi.config import StackConfig

DKIM_RECORDS = 3  # Easy DKIM always publishes three tokens
EVENT_TYPES = ["BOUNCE", "COMPLAINT", "REJECT"]
SEND_ACTIONS = ["ses:SendEmail", "ses:SendRawEmail"]


def _nth(values: list[str], index: int) -> str:
    return values[index]


def _dkim_tokens(attributes: Any) -> list[str]:
    return list(attributes.tokens or []) if attributes is not None else []


class Email(pulumi.ComponentResource):
    identity: aws.sesv2.EmailIdentity
    configuration_set: aws.sesv2.ConfigurationSet
    events_topic: aws.sns.Topic
    from_address: str

    def __init__(
        self,
        name: str,
        config: StackConfig,
        account_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:email:Email", name, None, opts)
        domain = config.email_domain
        self.from_address = f"no-reply@{domain}"
        self.configuration_set = aws.sesv2.ConfigurationSet(
            f"{name}-configuration-set",
            configuration_set_name=f"{config.name_prefix}-email",
            delivery_options={"tls_policy": "REQUIRE"},
            reputation_options={"reputation_metrics_enabled": True},
            sending_options={"sending_enabled": True},
            suppression_options={"suppressed_reasons": ["BOUNCE", "COMPLAINT"]},
            tags=tags(config, "email"),
            opts=child(self),
        )
        self.identity = aws.sesv2.EmailIdentity(
            f"{name}-identity",
            email_identity=domain,
            configuration_set_name=self.configuration_set.configuration_set_name,
            tags=tags(config, "email-identity"),
            opts=child(self),
        )
        tokens: pulumi.Output[list[str]] = self.identity.dkim_signing_attributes.apply(_dkim_tokens)
        for index in range(DKIM_RECORDS):
            token = tokens.apply(functools.partial(_nth, index=index))
            aws.route53.Record(
                f"{name}-dkim-{index}",
                zone_id=config.hosted_zone_id,
                name=token.apply(lambda value: f"{value}._domainkey.{domain}"),
                type="CNAME",
                ttl=1800,
                records=[token.apply(lambda value: f"{value}.dkim.amazonses.com")],
                opts=child(self),
            )
        self.events_topic = self._events_topic(name, config, account_id)
        aws.sesv2.ConfigurationSetEventDestination(
            f"{name}-events",
            configuration_set_name=self.configuration_set.configuration_set_name,
            event_destination_name="bounces-and-complaints",
            event_destination={
                "enabled": True,
                "matching_event_types": EVENT_TYPES,
                "sns_destination": {"topic_arn": self.events_topic.arn},
            },
            opts=child(self),
        )
        self.register_outputs(
            {
                "identityArn": self.identity.arn,
                "configurationSetName": self.configuration_set.configuration_set_name,
                "eventsTopicArn": self.events_topic.arn,
            }
        )

    def _events_topic(
        self, name: str, config: StackConfig, account_id: pulumi.Input[str]
    ) -> aws.sns.Topic:
        topic = aws.sns.Topic(
            f"{name}-events",
            name=f"{config.name_prefix}-email-events",
            tags=tags(config, "email-events"),
            opts=child(self),
        )
        aws.sns.TopicPolicy(
            f"{name}-events",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account_id, self.configuration_set.arn).apply(
                lambda values: document(
                    [
                        {
                            "Sid": "SesEventsOfThisConfigurationSet",
                            "Effect": "Allow",
                            "Principal": {"Service": "ses.amazonaws.com"},
                            "Action": "sns:Publish",
                            "Resource": values[0],
                            "Condition": {
                                "StringEquals": {
                                    "AWS:SourceAccount": values[1],
                                    "AWS:SourceArn": values[2],
                                }
                            },
                        }
                    ]
                )
            ),
            opts=child(self),
        )
        return topic

    def send_policy(self) -> pulumi.Output[str]:
        """Send from this identity's address through this configuration set, nothing else."""
        statement: dict[str, Any] = {
            "Sid": "SendAccountEmail",
            "Effect": "Allow",
            "Action": SEND_ACTIONS,
            "Resource": [self.identity.arn, self.configuration_set.arn],
            "Condition": {"StringEquals": {"ses:FromAddress": self.from_address}},
        }
        return output_document([statement])

    def api_environment(self, link_base_url: str) -> dict[str, pulumi.Input[str]]:
        return {
            "EMAIL_BACKEND": "ses",
            "EMAIL_FROM": self.from_address,
            "EMAIL_SES_CONFIGURATION_SET": self.configuration_set.configuration_set_name,
            "EMAIL_LINK_BASE_URL": link_base_url,
        }
