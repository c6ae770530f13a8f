"""Container definitions of the API task: the API itself and its ADOT metrics sidecar.

Pure functions over resolved values, so the wiring in compute.py stays short and tests can read
the result from the task definition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from infra_pulumi.components import _containers as containers

API_PORT = 8000
ADOT_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"


def api_definitions(
    image: str,
    env: Mapping[str, str],
    secrets: Mapping[str, str],
    log_group: str,
    adot_log_group: str,
    remote_write_url: str,
    region: str,
    stack: str,
) -> list[dict[str, Any]]:
    api = {
        "name": "api",
        "image": image,
        "essential": True,
        "command": containers.with_bootstrap(
            [
                "uvicorn",
                "api.main:app",
                "--host",
                "0.0.0.0",  # noqa: S104 - the task's own ENI; only the ALB's group may connect
                "--port",
                str(API_PORT),
                # as the image's own CMD: X-Forwarded-For is judged by TRUSTED_PROXIES
                "--no-proxy-headers",
                "--no-server-header",
            ]
        ),
        "portMappings": [{"containerPort": API_PORT, "protocol": "tcp"}],
        "environment": containers.env_list(env),
        "secrets": containers.secret_list(secrets),
        "readonlyRootFilesystem": False,
        "logConfiguration": containers.log_configuration(log_group, region, "api"),
    }
    adot = {
        "name": "adot-collector",
        "image": ADOT_IMAGE,
        "essential": False,
        "environment": containers.env_list(
            {"AOT_CONFIG_CONTENT": adot_config(region, remote_write_url, stack)}
        ),
        # The sidecar authenticates its scrape of /metrics with the same METRICS_TOKEN.
        "secrets": containers.secret_list({"METRICS_TOKEN": secrets["METRICS_TOKEN"]}),
        "logConfiguration": containers.log_configuration(adot_log_group, region, "adot"),
    }
    return [api, adot]


# Every sidecar scrapes its own task at localhost:8000, so the scrape alone would give all tasks
# the same `instance` and `job` and their series would collide in AMP (duplicate or out-of-order
# samples, one task's counters overwriting another's). The ECS detector reads the task from
# ECS_CONTAINER_METADATA_URI_V4 (set in every Fargate container); its task id replaces
# `service.instance.id`, which the remote-write exporter turns into the `instance` label.
# (aws.ecs.task.id: resourcedetection since collector-contrib v0.91; ADOT v0.40 builds on
# a later one.) No resource_to_telemetry_conversion: the other detected attributes (cluster,
# family, revision, AZ, log streams) go to `target_info` only instead of onto every series.
TASK_ID_ATTRIBUTE = "aws.ecs.task.id"


def adot_config(region: str, remote_write_url: str, stack: str) -> str:
    """OpenTelemetry collector config: scrape the API's /metrics with the bearer token, label
    the series with this task's id (`instance`), and remote-write to AMP with SigV4 (the task
    role grants aps:RemoteWrite)."""
    config = {
        "extensions": {"sigv4auth": {"region": region, "service": "aps"}},
        "receivers": {
            "prometheus": {
                "config": {
                    "global": {"scrape_interval": "30s", "external_labels": {"stack": stack}},
                    "scrape_configs": [
                        {
                            "job_name": "slipway-api",
                            "metrics_path": "/metrics",
                            "authorization": {
                                "type": "Bearer",
                                "credentials": "${env:METRICS_TOKEN}",
                            },
                            "static_configs": [{"targets": [f"localhost:{API_PORT}"]}],
                        }
                    ],
                }
            }
        },
        "processors": {
            "resourcedetection/ecs": {
                "detectors": ["ecs"],
                "timeout": "5s",
                "override": False,
            },
            "resource/instance": {
                "attributes": [
                    {
                        "key": "service.instance.id",
                        "from_attribute": TASK_ID_ATTRIBUTE,
                        "action": "upsert",
                    }
                ]
            },
        },
        "exporters": {
            "prometheusremotewrite": {
                "endpoint": remote_write_url,
                "auth": {"authenticator": "sigv4auth"},
            }
        },
        "service": {
            "extensions": ["sigv4auth"],
            "pipelines": {
                "metrics": {
                    "receivers": ["prometheus"],
                    # Order matters: the task id must be detected before it is copied.
                    "processors": ["resourcedetection/ecs", "resource/instance"],
                    "exporters": ["prometheusremotewrite"],
                }
            },
        },
    }
    return json.dumps(config)
