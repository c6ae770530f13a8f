"""Offline monthly cost of a stack at idle, from its mocked resources and `prices.toml`.

    python -m infra_pulumi.cost --stack staging      # `make infra-cost STACK=staging`

One line per resource that costs money while nobody uses the stack, then the total. Prices are
on-demand list prices kept in `prices.toml` (region, date and source written there); usage
charges (requests, data, users) are zero at idle. A resource type or size the table does not
price is an error, never a silent zero.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra_pulumi.plan import Plan, PlannedResource

PRICES_FILE = Path(__file__).with_name("prices.toml")
# Idle cost goals per stack kind, USD a month (docs/deploying.md): dev <= 40, staging <= 150,
# prod <= 550.
GOALS_USD = {"dev": 40.0, "staging": 150.0, "prod": 550.0}


class UnpricedError(LookupError):
    """The price table has no price for something the stack creates."""


@dataclass(frozen=True)
class CostLine:
    resource_type: str
    name: str
    monthly_usd: float
    basis: str


class PriceTable:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.hours = float(data["hours_per_month"])

    @staticmethod
    def load(path: Path = PRICES_FILE) -> PriceTable:
        return PriceTable(tomllib.loads(path.read_text(encoding="utf-8")))

    def hourly(self, key: str, size: str | None = None) -> float:
        table = self.data["hourly"]
        try:
            value = table[key] if size is None else table[key][size]
        except KeyError:
            what = key if size is None else f"{key} {size}"
            raise UnpricedError(f"{PRICES_FILE.name} has no hourly price for {what}") from None
        return float(value)

    def monthly(self, key: str) -> float:
        return float(self.data["monthly"][key])

    def assumption(self, key: str) -> float:
        return float(self.data["assumptions"][key])


def estimate(plan: Plan, prices: PriceTable) -> list[CostLine]:
    """The resources of `plan` that cost money at idle, most expensive first."""
    tasks = {r.props.get("arn"): r for r in plan.resources if r.type == TASK_DEFINITION}
    lines: list[CostLine] = []
    for resource in plan.resources:
        if not resource.custom:
            continue
        pricer = PRICERS.get(resource.type)
        if pricer is None:
            continue
        monthly, basis = pricer(resource, prices, tasks)
        if monthly > 0:
            lines.append(CostLine(resource.type, resource.name, round(monthly, 2), basis))
    return sorted(lines, key=lambda line: (-line.monthly_usd, line.resource_type, line.name))


def total(lines: Sequence[CostLine]) -> float:
    return round(sum(line.monthly_usd for line in lines), 2)


Tasks = Mapping[Any, PlannedResource]
Pricer = Callable[[PlannedResource, PriceTable, Tasks], tuple[float, str]]
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
SIDECAR = "adot-collector"


def _nat(_: PlannedResource, prices: PriceTable, __: Tasks) -> tuple[float, str]:
    return prices.hourly("nat_gateway") * prices.hours, "NAT gateway hours"


def _public_ip(_: PlannedResource, prices: PriceTable, __: Tasks) -> tuple[float, str]:
    return prices.hourly("public_ipv4_address") * prices.hours, "public IPv4 address"


def _load_balancer(resource: PlannedResource, prices: PriceTable, _: Tasks) -> tuple[float, str]:
    # An internet-facing ALB holds a public IPv4 address in each of its subnets.
    addresses = 0 if resource.props.get("internal") else len(resource.props.get("subnets") or [])
    hourly = prices.hourly("application_load_balancer")
    hourly += addresses * prices.hourly("public_ipv4_address")
    return hourly * prices.hours, f"ALB hours, {addresses} public IPv4, no LCU at idle"


def _task_size(service: PlannedResource, tasks: Tasks) -> tuple[float, float, PlannedResource]:
    task = tasks.get(service.props.get("taskDefinition"))
    if task is None:
        raise UnpricedError(f"service {service.name}: its task definition is not in the plan")
    return float(task.props["cpu"]) / 1024, float(task.props["memory"]) / 1024, task


def _service(resource: PlannedResource, prices: PriceTable, tasks: Tasks) -> tuple[float, str]:
    vcpu, gb, task = _task_size(resource, tasks)
    count = int(resource.props.get("desiredCount") or 0)
    hourly = vcpu * prices.hourly("fargate_vcpu") + gb * prices.hourly("fargate_gb")
    basis = f"{count} Fargate task(s) of {vcpu:g} vCPU / {gb:g} GB"
    containers = json.loads(task.props["containerDefinitions"])
    if any(container["name"] == SIDECAR for container in containers):
        # Each task's ADOT sidecar remote-writes the API's series to AMP.
        samples = prices.assumption("api_series_per_task") * prices.assumption("scrapes_per_month")
        metrics = count * samples * prices.monthly("amp_sample")
        return count * hourly * prices.hours + metrics, f"{basis}, AMP ingestion {metrics:.2f}"
    return count * hourly * prices.hours, basis


def _database(resource: PlannedResource, prices: PriceTable, _: Tasks) -> tuple[float, str]:
    props = resource.props
    copies = 2 if props.get("multiAz") else 1
    instance = prices.hourly("rds", str(props["instanceClass"])) * prices.hours
    storage = float(props.get("allocatedStorage") or 0) * prices.monthly("rds_gp3_storage_gb")
    zones = "multi-AZ" if copies == 2 else "single-AZ"
    basis = f"{props['instanceClass']} {zones}, {props.get('allocatedStorage')} GB gp3"
    return copies * (instance + storage), basis


def _cache(resource: PlannedResource, prices: PriceTable, _: Tasks) -> tuple[float, str]:
    nodes = int(resource.props.get("numCacheClusters") or 1)
    node_type = str(resource.props["nodeType"])
    monthly = nodes * prices.hourly("elasticache", node_type) * prices.hours
    return monthly, f"{nodes} x {node_type}"


def _instance(resource: PlannedResource, prices: PriceTable, _: Tasks) -> tuple[float, str]:
    kind = str(resource.props["instanceType"])
    volume = float((resource.props.get("rootBlockDevice") or {}).get("volumeSize") or 8)
    monthly = prices.hourly("ec2", kind) * prices.hours + volume * prices.monthly(
        "ebs_gp3_storage_gb"
    )
    return monthly, f"{kind}, {volume:g} GB gp3"


def _endpoint(resource: PlannedResource, prices: PriceTable, _: Tasks) -> tuple[float, str]:
    if resource.props.get("vpcEndpointType") != "Interface":
        return 0.0, "gateway endpoints are free"
    zones = len(resource.props.get("subnetIds") or [])
    hourly = zones * prices.hourly("vpc_interface_endpoint_per_az")
    return hourly * prices.hours, f"interface endpoint in {zones} AZ(s)"


def _web_acl(resource: PlannedResource, prices: PriceTable, _: Tasks) -> tuple[float, str]:
    rules = len(resource.props.get("rules") or [])
    monthly = prices.monthly("waf_web_acl") + rules * prices.monthly("waf_rule")
    return monthly, f"web ACL, {rules} rules"


def _flat(key: str, basis: str) -> Pricer:
    def price(_: PlannedResource, prices: PriceTable, __: Tasks) -> tuple[float, str]:
        return prices.monthly(key), basis

    return price


def _repository(_: PlannedResource, prices: PriceTable, __: Tasks) -> tuple[float, str]:
    size = prices.assumption("ecr_image_gb")
    return size * prices.monthly("ecr_storage_gb"), f"{size:g} GB of images"


PRICERS: dict[str, Pricer] = {
    "aws:ec2/natGateway:NatGateway": _nat,
    "aws:ec2/eip:Eip": _public_ip,
    "aws:lb/loadBalancer:LoadBalancer": _load_balancer,
    "aws:ecs/service:Service": _service,
    "aws:rds/instance:Instance": _database,
    "aws:elasticache/replicationGroup:ReplicationGroup": _cache,
    "aws:ec2/instance:Instance": _instance,
    "aws:ec2/vpcEndpoint:VpcEndpoint": _endpoint,
    "aws:wafv2/webAcl:WebAcl": _web_acl,
    "aws:kms/key:Key": _flat("kms_key", "customer managed key"),
    "aws:secretsmanager/secret:Secret": _flat("secrets_manager_secret", "secret"),
    "aws:ecr/repository:Repository": _repository,
}


def render(plan: Plan, lines: Sequence[CostLine], prices: PriceTable, out: Any) -> None:
    data = prices.data
    print(
        f"Idle monthly cost of stack {plan.stack!r}: on-demand list prices, {data['region']}, "
        f"as of {data['as_of']} ({data['source']})",
        file=out,
    )
    for line in lines:
        print(
            f"{line.monthly_usd:>9.2f}  {line.resource_type:<52} {line.name:<32} {line.basis}",
            file=out,
        )
    free = sum(1 for r in plan.resources if r.custom) - len(lines)
    print(f"{free} other resources cost nothing while idle (usage-priced or free)", file=out)
    print(f"monthly total: {total(lines):.2f} ({plan.stack})", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stack", required=True, help="dev, staging or prod")
    args = parser.parse_args(argv)
    from infra_pulumi.plan import run

    plan = run(args.stack)
    prices = PriceTable.load()
    render(plan, estimate(plan, prices), prices, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
