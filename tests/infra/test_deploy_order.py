"""Creation order the engine follows, read from the dependencies of the mocked resources."""

from __future__ import annotations

import json

import pytest

from infra_pulumi.plan import Plan, PlannedResource
from tests.infra.conftest import of_type

ECS_SERVICE = "aws:ecs/service:Service"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"


def _forwarders(plan: Plan, target_group_arn: str) -> list[PlannedResource]:
    """Listeners and listener rules whose actions forward to the target group."""
    found = []
    for resource in [*of_type(plan, LISTENER), *of_type(plan, LISTENER_RULE)]:
        actions = resource.props.get("defaultActions") or resource.props.get("actions") or []
        if any(a.get("targetGroupArn") == target_group_arn for a in actions):
            found.append(resource)
    return found


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_services_behind_a_load_balancer_wait_for_its_listener(
    plans: dict[str, Plan], stack: str
) -> None:
    """ECS refuses a service whose target group is not attached to a load balancer yet, and
    the listeners wait for ACM validation: each service must come after its listener."""
    plan = plans[stack]
    balanced = [s for s in of_type(plan, ECS_SERVICE) if s.props.get("loadBalancers")]
    assert balanced, "no ECS service behind a load balancer"
    for service in balanced:
        for attachment in service.props["loadBalancers"]:
            forwarders = _forwarders(plan, attachment["targetGroupArn"])
            assert forwarders, f"nothing forwards to {service.name}'s target group"
            for forwarder in forwarders:
                assert plan.depends_on(service, forwarder), (
                    f"{service.name} may be created before {forwarder.name}: "
                    f"{json.dumps(service.dependencies)}"
                )


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_pulumi_up_fails_when_a_service_never_becomes_healthy(
    plans: dict[str, Plan], stack: str
) -> None:
    """Without waiting for steady state `pulumi up` returns as soon as ECS accepts the new task
    definition, and the circuit breaker's rollback of a crash-looping release goes unnoticed."""
    services = of_type(plans[stack], ECS_SERVICE)
    assert services
    for service in services:
        assert service.props.get("waitForSteadyState") is True, service.name
        assert service.props["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
