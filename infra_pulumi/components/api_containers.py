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


def adot_config(region: str, remote_write_url: str, stack: str) -> str:
    """OpenTelemetry collector config: scrape the API's /metrics with the bearer token and
    remote-write to AMP with SigV4 (the task role grants aps:RemoteWrite)."""
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
        "exporters": {
            "prometheusremotewrite": {
                "endpoint": remote_write_url,
                "auth": {"authenticator": "sigv4auth"},
            }
        },
        "service": {
            "extensions": ["sigv4auth"],
            "pipelines": {
                "metrics": {"receivers": ["prometheus"], "exporters": ["prometheusremotewrite"]}
            },
        },
    }
    return json.dumps(config)
