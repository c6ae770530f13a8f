#!/usr/bin/env bash
# Runs one container of a stack's task definition as a one-off Fargate task and fails unless
# it exits 0: the deploy job's database migration (run-migration.sh) and flows registration
# (register-flows.sh).
# Inputs (environment): CLUSTER, TASK_FAMILY, NETWORK_CONFIGURATION (from the stack outputs);
# EXPECTED_IMAGE, the image just pushed (<ECR repository URL>:<commit SHA>); CONTAINER, the
# container whose exit code decides; LABEL, what the task does (for messages); STARTED_BY.
# Optional: OVERRIDES (run-task --overrides JSON); WAIT_ROUNDS (default 3) rounds of
# `aws ecs wait tasks-stopped`, ~10 minutes each.
set -euo pipefail

: "${CLUSTER:?}" "${TASK_FAMILY:?}" "${NETWORK_CONFIGURATION:?}" "${EXPECTED_IMAGE:?}"
: "${CONTAINER:?}" "${LABEL:?}" "${STARTED_BY:?}"
wait_rounds="${WAIT_ROUNDS:-3}"
container="$CONTAINER"

# The family's latest revision must carry the image just pushed: running the previous image
# would report success while leaving this release's work undone.
read -r task_definition image < <(
  aws ecs describe-task-definition --task-definition "$TASK_FAMILY" \
    --query "[taskDefinition.taskDefinitionArn, taskDefinition.containerDefinitions[?name=='$container'].image | [0]]" \
    --output text
)
if [[ "$image" != "$EXPECTED_IMAGE" ]]; then
  echo "::error::$TASK_FAMILY runs $image, expected $EXPECTED_IMAGE; was the $LABEL task definition updated?"
  exit 1
fi

overrides=()
if [[ -n "${OVERRIDES:-}" ]]; then
  overrides=(--overrides "$OVERRIDES")
fi
task_arn="$(
  aws ecs run-task --cluster "$CLUSTER" --task-definition "$task_definition" \
    --launch-type FARGATE --network-configuration "$NETWORK_CONFIGURATION" \
    --started-by "$STARTED_BY" "${overrides[@]}" \
    --query 'tasks[0].taskArn' --output text
)"
if [[ -z "$task_arn" || "$task_arn" == "None" ]]; then
  echo "::error::ECS did not start the $LABEL task ($task_definition)"
  exit 1
fi
echo "$LABEL task: $task_arn"

# One waiter round polls for about ten minutes; a long task gets a few.
for ((round = 1; ; round++)); do
  if aws ecs wait tasks-stopped --cluster "$CLUSTER" --tasks "$task_arn"; then
    break
  fi
  if ((round >= wait_rounds)); then
    echo "::error::the $LABEL task has not stopped after $wait_rounds waits: $task_arn"
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
  echo "::error::$LABEL failed (exit code $exit_code: $stopped_reason); logs: stream $container/$container/$task_id"
  exit 1
fi
echo "$LABEL succeeded (logs: stream $container/$container/$task_id)"
