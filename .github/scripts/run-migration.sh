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

: "${CLUSTER:?}" "${TASK_FAMILY:?}" "${NETWORK_CONFIGURATION:?}" "${EXPECTED_IMAGE:?}"
wait_rounds="${WAIT_ROUNDS:-3}"
container=migrate

# The family's latest revision must carry the image just pushed: migrating with the previous
# image would report success while leaving the new schema changes unapplied.
read -r task_definition image < <(
  aws ecs describe-task-definition --task-definition "$TASK_FAMILY" \
    --query "[taskDefinition.taskDefinitionArn, taskDefinition.containerDefinitions[?name=='$container'].image | [0]]" \
    --output text
)
if [[ "$image" != "$EXPECTED_IMAGE" ]]; then
  echo "::error::$TASK_FAMILY runs $image, expected $EXPECTED_IMAGE; was the migration task definition updated?"
  exit 1
fi

task_arn="$(
  aws ecs run-task --cluster "$CLUSTER" --task-definition "$task_definition" \
    --launch-type FARGATE --network-configuration "$NETWORK_CONFIGURATION" \
    --started-by "github-actions-migration" \
    --query 'tasks[0].taskArn' --output text
)"
if [[ -z "$task_arn" || "$task_arn" == "None" ]]; then
  echo "::error::ECS did not start the migration task ($task_definition)"
  exit 1
fi
echo "migration task: $task_arn"

# One waiter round polls for about ten minutes; a long migration gets a few.
for ((round = 1; ; round++)); do
  if aws ecs wait tasks-stopped --cluster "$CLUSTER" --tasks "$task_arn"; then
    break
  fi
  if ((round >= wait_rounds)); then
    echo "::error::the migration task has not stopped after $wait_rounds waits: $task_arn"
    exit 1
  fi
done

read -r exit_code stopped_reason < <(
  aws ecs describe-tasks --cluster "$CLUSTER" --tasks "$task_arn" \
    --query "[tasks[0].containers[?name=='$container'].exitCode | [0], tasks[0].stoppedReason]" \
    --output text
)
task_id="${task_arn##*/}"
if [[ "$exit_code" != "0" ]]; then
  echo "::error::migration failed (exit code $exit_code: $stopped_reason); logs: stream $container/$container/$task_id"
  exit 1
fi
echo "migration succeeded (logs: stream $container/$container/$task_id)"
