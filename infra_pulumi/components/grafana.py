"""Provisioning inside the Managed Grafana workspace (pulumiverse-grafana): the AMP data
source, folders and the generated dashboards.

No contact points: every alert rule is evaluated by AMP and routed by its alert manager
(infra_pulumi/alerting.py). Managed Grafana has no e-mail contact point, and a contact point no
Grafana rule routes to would be a notification path nobody ever exercises."""

from __future__ import annotations

import datetime as dt
import json

import pulumi
import pulumi_aws as aws
import pulumiverse_grafana as grafana

from infra_pulumi import alerting
from infra_pulumi.components._shared import child
from infra_pulumi.config import StackConfig

# Generated dashboards reference this data source uid.
PROMETHEUS_UID = "amp"
OPS_PREFIX = "ops"
TOKEN_LIFETIME_SECONDS = 30 * 24 * 3600
# A deploy in a new 14-day period replaces the token, so a token is replaced by any deploy
# from day 28 of its life on, before it expires on day 30 (tests/infra/test_grafana.py).
ROTATION_DAYS = 14
_ROTATION_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def token_period(now: dt.datetime) -> int:
    """The rotation period a deploy at `now` falls in."""
    return (now - _ROTATION_EPOCH).days // ROTATION_DAYS


class GrafanaContent(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        config: StackConfig,
        workspace: aws.grafana.Workspace,
        prometheus_endpoint: pulumi.Input[str],
        now: dt.datetime,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("slipway:observability:GrafanaContent", name, None, opts)
        account = aws.grafana.WorkspaceServiceAccount(
            f"{name}-provisioner",
            name="pulumi-provisioner",
            grafana_role="ADMIN",
            workspace_id=workspace.id,
            opts=child(self),
        )
        # Short-lived, and its provider never notices expiry (the read does not check it): the
        # name carries the rotation period, and every argument of a token forces replacement,
        # so the first deploy of each period creates a new one (the key stays secret).
        token = aws.grafana.WorkspaceServiceAccountToken(
            f"{name}-provisioner",
            name=f"pulumi-provisioner-{token_period(now)}",
            service_account_id=account.service_account_id,
            seconds_to_live=TOKEN_LIFETIME_SECONDS,
            workspace_id=workspace.id,
            opts=child(self),
        )
        provider = grafana.Provider(
            f"{name}-provider",
            url=workspace.endpoint.apply(lambda endpoint: f"https://{endpoint}"),
            auth=token.key,
            opts=child(self),
        )

        def with_provider() -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=provider)

        grafana.oss.DataSource(
            f"{name}-amp",
            name="Amazon Managed Prometheus",
            uid=PROMETHEUS_UID,
            type="prometheus",
            url=prometheus_endpoint,
            is_default=True,
            json_data_encoded=json.dumps(
                {
                    "httpMethod": "POST",
                    "sigV4Auth": True,
                    "sigV4AuthType": "ec2_iam_role",
                    "sigV4Region": config.region,
                }
            ),
            opts=with_provider(),
        )
        folders = {
            "api": grafana.oss.Folder(
                f"{name}-folder-api", title="Slipway API", uid="slipway-api", opts=with_provider()
            ),
            "ops": grafana.oss.Folder(
                f"{name}-folder-ops", title="Slipway Ops", uid="slipway-ops", opts=with_provider()
            ),
        }
        dashboards = alerting.load_dashboards()
        for dashboard in dashboards:
            folder = folders["ops" if dashboard.slug.startswith(OPS_PREFIX) else "api"]
            grafana.oss.Dashboard(
                f"{name}-dashboard-{dashboard.slug}",
                folder=folder.uid,
                config_json=dashboard.json_text,
                overwrite=True,
                message="provisioned by pulumi (dashboards/generated)",
                opts=with_provider(),
            )
        self.dashboard_count = len(dashboards)
        self.register_outputs({"dashboards": len(dashboards)})
