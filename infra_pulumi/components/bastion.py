"""One small EC2 instance for operators' database access: no public IP, no SSH key, IMDSv2,
reached only through SSM Session Manager (port forwarding to RDS)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import child, service_trust, tags
from infra_pulumi.config import StackConfig

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"


class Bastion(pulumi.ComponentResource):
    instance: aws.ec2.Instance

    def __init__(
        self,
        name: str,
        config: StackConfig,
        subnet_id: pulumi.Input[str],
        security_group_id: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:bastion:Bastion", name, None, opts)
        role = aws.iam.Role(
            f"{name}-role",
            name=f"{config.name_prefix}-bastion",
            assume_role_policy=service_trust("ec2.amazonaws.com"),
            description="SSM Session Manager only",
            tags=tags(config, "bastion"),
            opts=child(self),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
            opts=child(self),
        )
        profile = aws.iam.InstanceProfile(
            f"{name}-profile",
            name=f"{config.name_prefix}-bastion",
            role=role.name,
            opts=child(self),
        )
        ami = aws.ssm.get_parameter_output(name=AMI_PARAMETER)
        self.instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami.value,
            instance_type="t4g.nano",
            subnet_id=subnet_id,
            vpc_security_group_ids=[security_group_id],
            associate_public_ip_address=False,
            iam_instance_profile=profile.name,
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            root_block_device={"encrypted": True, "kms_key_id": kms_key_arn, "volume_size": 8},
            monitoring=True,
            tags=tags(config, "bastion"),
            # A new AMI should not replace the instance on every deploy.
            opts=child(self, ignore_changes=["ami"]),
        )
        self.register_outputs({"instanceId": self.instance.id})
