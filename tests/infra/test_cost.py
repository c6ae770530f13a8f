"""`make infra-cost`: the offline estimate from the price table, and the stacks' idle goals."""

from __future__ import annotations

import io
import json
import tomllib

import pytest

from infra_pulumi.cost import (
    GOALS_USD,
    PRICES_FILE,
    PriceTable,
    UnpricedError,
    estimate,
    render,
    total,
)
from infra_pulumi.plan import Plan, PlannedResource

HOURS = 730


def resource(type_: str, name: str, **props: object) -> PlannedResource:
    return PlannedResource(type_, name, f"urn::{name}", True, f"{name}-id", dict(props))


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    return PriceTable.load()


def test_price_table_says_where_and_when_its_prices_come_from() -> None:
    data = tomllib.loads(PRICES_FILE.read_text(encoding="utf-8"))
    assert data["region"] == "eu-west-1"
    assert data["as_of"]
    assert "on-demand" in data["source"]
    assert data["hours_per_month"] == HOURS


def test_estimate_prices_each_resource_from_the_table(prices: PriceTable) -> None:
    containers = json.dumps([{"name": "api"}])
    plan = Plan(
        stack="example",
        resources=[
            resource("aws:ec2/natGateway:NatGateway", "nat"),
            resource(
                "aws:rds/instance:Instance",
                "db",
                instanceClass="db.t4g.micro",
                multiAz=True,
                allocatedStorage=20,
            ),
            resource(
                "aws:ecs/taskDefinition:TaskDefinition",
                "task",
                arn="arn:task",
                cpu="512",
                memory="1024",
                containerDefinitions=containers,
            ),
            resource("aws:ecs/service:Service", "svc", taskDefinition="arn:task", desiredCount=2),
            resource("aws:lb/loadBalancer:LoadBalancer", "alb", subnets=["a", "b"]),
            resource("aws:lambda/function:Function", "fn"),
        ],
    )
    lines = {line.name: line.monthly_usd for line in estimate(plan, prices)}
    hourly = prices.data["hourly"]
    assert lines["nat"] == pytest.approx(hourly["nat_gateway"] * HOURS, abs=0.01)
    database = 2 * (hourly["rds"]["db.t4g.micro"] * HOURS + 20 * 0.127)
    assert lines["db"] == pytest.approx(database, abs=0.01)
    task = 0.5 * hourly["fargate_vcpu"] + 1 * hourly["fargate_gb"]
    assert lines["svc"] == pytest.approx(2 * task * HOURS, abs=0.01)
    alb = hourly["application_load_balancer"] + 2 * hourly["public_ipv4_address"]
    assert lines["alb"] == pytest.approx(alb * HOURS, abs=0.01)
    assert "fn" not in lines  # Lambda costs nothing while idle
    out = io.StringIO()
    render(plan, estimate(plan, prices), prices, out)
    assert (
        out.getvalue().splitlines()[-1]
        == f"monthly total: {total(estimate(plan, prices)):.2f} (example)"
    )


def test_a_size_the_table_does_not_price_is_an_error(prices: PriceTable) -> None:
    plan = Plan(
        stack="example",
        resources=[
            resource(
                "aws:elasticache/replicationGroup:ReplicationGroup",
                "cache",
                nodeType="cache.r7g.16xlarge",
                numCacheClusters=1,
            )
        ],
    )
    with pytest.raises(UnpricedError, match=r"cache.r7g.16xlarge"):
        estimate(plan, prices)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stack_meets_its_idle_cost_goal(
    plans: dict[str, Plan], prices: PriceTable, stack: str
) -> None:
    lines = estimate(plans[stack], prices)
    assert total(lines) <= GOALS_USD[stack], "\n".join(
        f"{line.monthly_usd:8.2f} {line.name}" for line in lines
    )
