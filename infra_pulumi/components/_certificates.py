"""DNS-validated ACM certificates and alias records in the stack's hosted zone."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import child, tags
from infra_pulumi.config import StackConfig


def validated_certificate(
    parent: pulumi.Resource,
    name: str,
    config: StackConfig,
    domain: str,
    region: str | None = None,
) -> pulumi.Output[str]:
    """ARN of a certificate for `domain`, usable once DNS validation has completed.

    CloudFront needs its certificate in us-east-1 (`region`); ALBs use the stack's region.
    """
    certificate = aws.acm.Certificate(
        name,
        domain_name=domain,
        validation_method="DNS",
        key_algorithm="EC_prime256v1",
        region=region,
        tags=tags(config, name),
        opts=child(parent),
    )
    option = certificate.domain_validation_options[0]
    record = aws.route53.Record(
        f"{name}-validation",
        zone_id=config.hosted_zone_id,
        name=option.resource_record_name,
        type=option.resource_record_type,
        records=[option.resource_record_value],
        ttl=300,
        allow_overwrite=True,
        opts=child(parent),
    )
    validation = aws.acm.CertificateValidation(
        name,
        certificate_arn=certificate.arn,
        validation_record_fqdns=[record.fqdn],
        region=region,
        opts=child(parent),
    )
    return validation.certificate_arn


def alias_records(
    parent: pulumi.Resource,
    name: str,
    config: StackConfig,
    domain: str,
    target_dns_name: pulumi.Input[str],
    target_zone_id: pulumi.Input[str],
) -> None:
    for record_type in ("A", "AAAA"):
        aws.route53.Record(
            f"{name}-{record_type.lower()}",
            zone_id=config.hosted_zone_id,
            name=domain,
            type=record_type,
            aliases=[
                {
                    "name": target_dns_name,
                    "zone_id": target_zone_id,
                    "evaluate_target_health": False,
                }
            ],
            opts=child(parent),
        )
