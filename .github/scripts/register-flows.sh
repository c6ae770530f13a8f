#!/usr/bin/env bash
# Registers prefect.yaml's deployments with the stack's Prefect server after `pulumi up`: runs
# the registration task (`python -m flows deploy` in the flows image) as a one-off Fargate task
# inside the VPC and fails unless it exits 0, so a deploy whose scheduled flows were not
# registered fails.
# A task started by run-task gets no Service Connect proxy, so the server is reached at its
# task's private address (the registration task runs in the worker security group, which the
# server admits), passed as PREFECT_API_URL.
# Inputs (environment), from the stack outputs: CLUSTER (clusterName), TASK_FAMILY
# (flowsRegistrationTaskFamily), NETWORK_CONFIGURATION (flowsRunTaskNetwork); EXPECTED_IMAGE is
# the flows image just pushed. Optional: PREFECT_SERVICE (default prefect-server), WAIT_ROUNDS.
set -euo pipefail

: "${CLUSTER:?}" "${TASK_FAMILY:?}" "${NETWORK_CONFIGURATION:?}" "${EXPECTED_IMAGE:?}"
service="${PREFECT_SERVICE:-prefect-server}"

server_task="$(
  aws ecs list-tasks --cluster "$CLUSTER" --service-name "$service" --desired-status RUNNING \
    --query 'taskArns[0]' --output text
)"
if [[ -z "$server_task" || "$server_task" == "None" ]]; then
  echo "::error::no running $service task in $CLUSTER: the deployments cannot be registered"
  exit 1
fi
server_ip="$(
  aws ecs describe-tasks --cluster "$CLUSTER" --tasks "$server_task" \
    --query "tasks[0].attachments[?type=='ElasticNetworkInterface'] | [0].details[?name=='privateIPv4Address'].value | [0]" \
    --output text
)"
if [[ ! "$server_ip" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
  echo "::error::$service task $server_task has no private IPv4 address ($server_ip)"
  exit 1
fi
echo "Prefect server: $server_ip ($server_task)"

overrides="$(printf '{"containerOverrides":[{"name":"register-flows","environment":[{"name":"PREFECT_API_URL","value":"http://%s:4200/api"}]}]}' "$server_ip")"
CONTAINER=register-flows LABEL="flows registration" STARTED_BY=github-actions-flows-registration \
  OVERRIDES="$overrides" exec "$(dirname "$0")/run-one-off-task.sh"
