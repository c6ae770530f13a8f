#!/usr/bin/env bash
# Runs `alembic upgrade head` as a one-off Fargate task (the stack's migration task definition)
# and fails unless its container exits 0. Called by deploy.yml between the targeted
# `pulumi up` that registers the new migration task definition and the full `pulumi up` that
# rolls out the new API, so the schema is migrated before the new version serves traffic.
# Inputs (environment), from the stack outputs: CLUSTER (clusterName), TASK_FAMILY
# (migrationTaskFamily), NETWORK_CONFIGURATION (runTaskNetwork); EXPECTED_IMAGE is the image
# just pushed (<ECR repository URL>:<commit SHA>).
# Optional: WAIT_ROUNDS (default 3) rounds of `aws ecs wait tasks-stopped`, ~10 minutes each.
set -euo pipefail

CONTAINER=migrate LABEL=migration STARTED_BY=github-actions-migration \
  exec "$(dirname "$0")/run-one-off-task.sh"
