"""CloudWatch log groups with retention: every stack has them, whatever else it runs."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra_pulumi.components._shared import child, tags
from infra_pulumi.config import StackConfig

LOG_GROUPS = ("api", "adot", "prefect-server", "prefect-worker")


# Where these groups lived before they had a component of their own (kept by aliases, so
# existing stacks keep their logs instead of replacing the groups).
_FORMER_PARENT_TYPE = "slipway:observability:Observability"


class LogGroups(pulumi.ComponentResource):
    groups: dict[str, aws.cloudwatch.LogGroup]

    def __init__(self, name: str, config: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("slipway:observability:LogGroups", name, None, opts)
        names = {group: f"/slipway/{config.stack}/{group}" for group in LOG_GROUPS}
        # Lambda writes to /aws/lambda/<function>; created here so it gets a retention.
        names["lambda"] = f"/aws/lambda/{config.name_prefix}-api"
        self.groups = {
            group: aws.cloudwatch.LogGroup(
                f"{name}-{group}",
                name=log_group_name,
                retention_in_days=config.log_retention_days,
                tags=tags(config, f"logs-{group}"),
                opts=child(self, aliases=[_former_urn(f"{name}-{group}")]),
            )
            for group, log_group_name in names.items()
        }
        self.register_outputs({})


def _former_urn(resource_name: str) -> str:
    qualified = f"{_FORMER_PARENT_TYPE}$aws:cloudwatch/logGroup:LogGroup"
    return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{qualified}::{resource_name}"
