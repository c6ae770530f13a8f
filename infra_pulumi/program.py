"""Wires the components of one stack together. `__main__` exports what this returns."""

from __future__ import annotations

import datetime as dt

import pulumi
import pulumi_aws as aws

from infra_pulumi.components.bastion import Bastion
from infra_pulumi.components.cache import Cache
from infra_pulumi.components.cdn import Cdn
from infra_pulumi.components.ci_identity import CiIdentity
from infra_pulumi.components.compute import Compute, ComputeInputs
from infra_pulumi.components.database import DATABASE_NAME, Database
from infra_pulumi.components.email import Email
from infra_pulumi.components.flows_worker import FlowsInputs, FlowsWorker
from infra_pulumi.components.grafana import GrafanaContent
from infra_pulumi.components.logs import LogGroups
from infra_pulumi.components.network import Network
from infra_pulumi.components.observability import Observability
from infra_pulumi.components.secrets import Secrets
from infra_pulumi.components.security import SecurityGroups
from infra_pulumi.components.storage import Storage
from infra_pulumi.config import StackConfig


def build(config: StackConfig, now: dt.datetime) -> dict[str, pulumi.Input[str]]:
    """Creates every resource of the stack as deployed at `now`; returns the stack outputs
    (none of them secret)."""
    account_id = aws.get_caller_identity_output().account_id
    secrets = Secrets("secrets", config)
    key_arn = secrets.key.arn
    network = Network("network", config)
    groups = SecurityGroups("security", config, network.vpc.id)
    storage = Storage("storage", config, account_id, key_arn)
    database = Database(
        "database",
        config,
        network.isolated_subnet_ids,
        groups.database.id,
        key_arn,
        rotation_subnet_ids=network.private_subnet_ids,
        rotation_security_group_id=groups.worker.id,
    )
    logs = LogGroups("observability", config).groups
    if groups.endpoints is not None:
        network.private_endpoints(config, groups.endpoints.id)
    secret_arns: dict[str, pulumi.Input[str]] = {
        "JWT_PRIVATE_KEYS": secrets.secrets["jwt-private-keys"].arn,
        "STRIPE_SECRET_KEY": secrets.secrets["stripe-secret-key"].arn,
        "STRIPE_WEBHOOK_SECRETS": secrets.secrets["stripe-webhook-secrets"].arn,
        "METRICS_TOKEN": secrets.secrets["metrics-token"].arn,
        "ORIGIN_VERIFY_SECRET": secrets.secrets["origin-verify"].arn,
    }
    observability: Observability | None = None
    if config.shared_services:
        # Dev stacks limit rates in process and have no metrics pipeline, so nothing pages
        # for them and no alert waits forever on a metric they cannot produce.
        cache = Cache("cache", config, network.isolated_subnet_ids, groups.cache.id, key_arn)
        secret_arns["REDIS_URL"] = secrets.add("redis-url", cache.redis_url).arn
        observability = Observability("observability", config, account_id)
    email = Email("email", config, account_id)

    compute = Compute(
        "compute",
        config,
        ComputeInputs(
            vpc_id=network.vpc.id,
            public_subnet_ids=network.public_subnet_ids,
            private_subnet_ids=network.private_subnet_ids,
            app_security_group_id=groups.app.id,
            entry_security_group_ids=[
                groups.api_entry.id,
                # The Prefect UI (Cognito sign-in) shares the load balancer.
                *([groups.public_entry.id] if config.shared_services else []),
            ],
            kms_key_arn=key_arn,
            secret_arns=secret_arns,
            database_secret_arn=database.master_secret_arn,
            app_database_secret_arn=database.app_secret.arn,
            database_host=database.instance.address,
            database_name=DATABASE_NAME,
            log_group_name=logs["api"].name,
            adot_log_group_name=logs["adot"].name,
            remote_write_url=observability.remote_write_url if observability else None,
            workspace_arn=observability.workspace.arn if observability else None,
            origin_verify=secrets.origin_verify,
            email_environment=email.api_environment(f"https://{config.domain_name}"),
            email_send_policy=email.send_policy(),
        ),
    )
    cdn = Cdn(
        "cdn",
        config,
        storage.static_bucket.bucket,
        compute.api_origin_domain,
        secrets.origin_verify,
        lambda_origin=compute.function is not None,
    )
    compute.allow_cloudfront(cdn.distribution.arn)
    storage.grant_cloudfront_read(cdn.distribution.arn)
    outputs: dict[str, pulumi.Input[str]] = {
        "apiUrl": compute.api_url,
        "apiRuntime": config.api_runtime,
        "cloudfrontDomain": cdn.distribution.domain_name,
        "ecrRepositoryUrl": compute.repository.repository_url,
        "clusterName": compute.cluster.name,
        "migrationTaskFamily": compute.migration_task_family,
        "runTaskNetwork": compute.run_task_network,
        "backupBucket": storage.backup_bucket.bucket,
        "emailEventsTopicArn": email.events_topic.arn,
        # make publish-static uploads here and invalidates what changed (deploy.yml).
        "staticBucket": storage.static_bucket.bucket,
        "cloudfrontDistributionId": cdn.distribution.id,
    }
    if observability is None or compute.balancer is None or compute.listener is None:
        return outputs  # a dev stack: the API and its database

    bastion = Bastion("bastion", config, network.private_subnet_ids[0], groups.bastion.id, key_arn)
    ci = CiIdentity("ci", config, storage.static_bucket.bucket, cdn.distribution.arn)
    flows = FlowsWorker(
        "flows",
        config,
        FlowsInputs(
            vpc_id=network.vpc.id,
            balancer=compute.balancer,
            listener=compute.listener,
            private_subnet_ids=network.private_subnet_ids,
            worker_security_group_id=groups.worker.id,
            cluster_arn=compute.cluster.arn,
            cluster_name=compute.cluster.name,
            kms_key_arn=key_arn,
            backup_bucket_name=storage.backup_bucket.bucket,
            reports_bucket_name=storage.reports_bucket.bucket,
            alerts_topic_arn=observability.page_topic.arn,
            database_secret_arn=database.master_secret_arn,
            database_host=database.instance.address,
            stripe_secret_arn=secrets.secrets["stripe-secret-key"].arn,
            server_log_group=logs["prefect-server"].name,
            worker_log_group=logs["prefect-worker"].name,
        ),
    )
    GrafanaContent(
        "grafana",
        config,
        observability.grafana,
        observability.workspace.prometheus_endpoint,
        now,
    )
    if ci.static_publish_role is not None:
        # The front-end repository's deploy workflow assumes it (infra_pulumi/github).
        outputs["staticPublishRoleArn"] = ci.static_publish_role.arn
    return {
        **outputs,
        "flowsEcrRepositoryUrl": flows.repository.repository_url,
        "grafanaUrl": observability.grafana_url,
        "prefectUiUrl": flows.prefect_ui_url,
        "deployRoleArn": ci.deploy_role.arn,
        "flowsRoleArn": flows.flows_role.arn,
        "flowsRegistrationTaskFamily": flows.registration_task_family,
        "flowsRunTaskNetwork": flows.run_task_network,
        "reportsBucket": storage.reports_bucket.bucket,
        "backupBucket": storage.backup_bucket.bucket,
        "bastionInstanceId": bastion.instance.id,
        "prometheusEndpoint": observability.workspace.prometheus_endpoint,
    }
