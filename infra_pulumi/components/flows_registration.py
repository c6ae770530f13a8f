"""The one-off task that registers prefect.yaml's deployments after each deploy.

deploy.yml runs it after `pulumi up` (.github/scripts/register-flows.sh), from inside the VPC:
the Prefect API is not reachable from the runner. A task started by `run-task` gets no Service
Connect proxy, so the script looks up the server task's private address and passes
`PREFECT_API_URL` as a container override; the worker security group it runs in may reach the
server's port. The deployments' parameters (`{{ $BACKUP_BUCKET }}`...) are resolved here, at
registration, so this container carries them.
"""

from __future__ import annotations

from typing import Any

from infra_pulumi.components import _containers as containers

REGISTRATION_CONTAINER = "register-flows"
FLOWS_HOME = "/app"  # where the flows image keeps the repository (prefect.yaml: SLIPWAY_HOME)


def registration_container(
    *,
    image: str,
    image_tag: str,
    log_group: str,
    region: str,
    backup_bucket: str,
    kms_key_arn: str,
) -> dict[str, Any]:
    return {
        "name": REGISTRATION_CONTAINER,
        "image": image,
        "essential": True,
        "command": ["python", "-m", "flows", "deploy"],
        "environment": containers.env_list(
            {
                "SLIPWAY_HOME": FLOWS_HOME,
                "FLOWS_IMAGE_TAG": image_tag,
                "BACKUP_BUCKET": backup_bucket,
                "BACKUP_KMS_KEY_ID": kms_key_arn,
            }
        ),
        "logConfiguration": containers.log_configuration(log_group, region, "register"),
    }
