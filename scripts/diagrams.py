"""`make diagrams`: architecture pictures generated from the code, committed as SVG.

- `docs/architecture/<stack>.svg`, one per `Pulumi.<stack>.yaml`: the stack's program run under
  Pulumi mocks (the offline plan of `make infra-plan`). Workloads sit in their network tier; every
  arrow is something the program declares: a security-group rule (who may open connections to
  whom, on which port), a CloudFront origin, or a hop of alert delivery.
- `docs/architecture/code-layers.svg`: the import graph of the project's packages, grouped into
  the layers that `make lint` enforces (import-linter contracts in pyproject.toml).
- `docs/erd.svg`: the data model, drawn from the same metadata as the Mermaid ERD in docs/erd.md.

`--check` renders everything in memory and exits 1 when a committed file is stale.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import cast

import graphviz
import grimp
from sqlalchemy import Table

from infra_pulumi.plan import Plan, PlannedResource

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture"
ERD_SVG = ROOT / "docs" / "erd.svg"

# Where each kind of resource lives, and how it is labelled. Everything else is left out: the
# plan has ~150 resources per stack, the picture shows the ones a newcomer reasons about.
TIERS = {
    "edge": "Edge (global)",
    "public": "Public subnets",
    "private": "Private subnets (app)",
    "isolated": "Isolated subnets (data)",
    "regional": "Regional services (outside the VPC)",
}
SHOWN: dict[str, tuple[str, str]] = {
    "aws:cloudfront/distribution:Distribution": ("edge", "CloudFront"),
    "aws:wafv2/webAcl:WebAcl": ("edge", "WAF"),
    "aws:lb/loadBalancer:LoadBalancer": ("public", "ALB"),
    "aws:ec2/natGateway:NatGateway": ("public", "NAT gateway"),
    "aws:ecs/service:Service": ("private", "ECS service"),
    "aws:lambda/function:Function": ("private", "Lambda"),
    "aws:ec2/instance:Instance": ("private", "EC2 (SSM)"),
    "aws:rds/instance:Instance": ("isolated", "RDS PostgreSQL"),
    "aws:rds/proxy:Proxy": ("isolated", "RDS Proxy"),
    "aws:elasticache/replicationGroup:ReplicationGroup": ("isolated", "ElastiCache"),
    "aws:elasticache/serverlessCache:ServerlessCache": ("isolated", "ElastiCache Serverless"),
    "aws:s3/bucket:Bucket": ("regional", "S3"),
    "aws:amp/workspace:Workspace": ("regional", "Managed Prometheus"),
    "aws:grafana/workspace:Workspace": ("regional", "Managed Grafana"),
    "aws:sns/topic:Topic": ("regional", "SNS"),
    "aws:chatbot/slackChannelConfiguration:SlackChannelConfiguration": ("regional", "Chatbot"),
    "aws:ses/domainIdentity:DomainIdentity": ("regional", "SES"),
    "aws:sesv2/emailIdentity:EmailIdentity": ("regional", "SES"),
}
# Properties through which a workload names its security groups.
SECURITY_GROUP_PATHS = (
    ("networkConfiguration", "securityGroups"),
    ("vpcSecurityGroupIds",),
    ("securityGroups",),
    ("securityGroupIds",),
    ("vpcConfig", "securityGroupIds"),
)
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
# (source node, target node) -> labels; one arrow per pair, however many reasons it has.
Edges = dict[tuple[str, str], list[str]]


def _dig(props: object, path: tuple[str, ...]) -> list[str]:
    for key in path:
        if not isinstance(props, dict):
            return []
        props = props.get(key)
    if isinstance(props, str):
        return [props]
    return [str(item) for item in props] if isinstance(props, list) else []


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _node_id(resource: PlannedResource) -> str:
    return resource.name


def _label(resource: PlannedResource, kind: str) -> str:
    name = str(resource.props.get("name") or resource.name)
    return f"{kind}\n{name}"


def stack_graph(plan: Plan) -> graphviz.Digraph:
    # Pulumi registers resources concurrently, so the plan's order varies from run to run;
    # drawing them in URN order keeps the layout (and the committed file) identical.
    plan = Plan(plan.stack, sorted(plan.resources, key=lambda r: r.urn), plan.outputs)
    graph = graphviz.Digraph(
        plan.stack,
        graph_attr={
            "rankdir": "LR",
            "label": f"Slipway — {plan.stack} stack",
            "fontsize": "20",
            "labelloc": "t",
            "fontname": "Helvetica",
            "newrank": "true",
        },
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fillcolor": "white",
            "fontname": "Helvetica",
            "fontsize": "11",
        },
        edge_attr={"fontname": "Helvetica", "fontsize": "9"},
    )
    shown = [r for r in plan.resources if r.type in SHOWN]
    graph.node("viewers", "Viewers\n(internet)", shape="ellipse", fillcolor="#eeeeee")
    for tier, title in TIERS.items():
        members = [r for r in shown if SHOWN[r.type][0] == tier]
        if not members:
            continue
        with graph.subgraph(name=f"cluster_{tier}") as cluster:
            cluster.attr(label=title, style="rounded", color="#888888")
            for resource in members:
                cluster.node(_node_id(resource), _label(resource, SHOWN[resource.type][1]))

    edges: Edges = defaultdict(list)
    _security_group_edges(edges, plan, shown)
    _edge_edges(graph, edges, plan, shown)
    _alerting_edges(graph, edges, plan, shown)
    for (source, target), labels in sorted(edges.items()):
        graph.edge(
            source, target, label=", ".join(dict.fromkeys(label for label in labels if label))
        )
    return graph


def _security_group_edges(edges: Edges, plan: Plan, shown: list[PlannedResource]) -> None:
    members: dict[str, list[PlannedResource]] = defaultdict(list)
    for resource in shown:
        for path in SECURITY_GROUP_PATHS:
            for group in _dig(resource.props, path):
                members[group].append(resource)
    for rule in (r for r in plan.resources if r.type == INGRESS):
        target_group = str(rule.props.get("securityGroupId", ""))
        port = str(int(float(rule.props.get("fromPort", 0))))
        if rule.props.get("referencedSecurityGroupId"):
            sources = [_node_id(r) for r in members[str(rule.props["referencedSecurityGroupId"])]]
        elif rule.props.get("prefixListId"):
            sources = [_node_id(r) for r in shown if SHOWN[r.type][1] == "CloudFront"]
        else:
            sources = ["viewers"]
        for source in sources:
            for target in members[target_group]:
                if source != _node_id(target):
                    edges[(source, _node_id(target))].append(f":{port}")


def _edge_edges(
    graph: graphviz.Digraph, edges: Edges, plan: Plan, shown: list[PlannedResource]
) -> None:
    """Viewers reach CloudFront; CloudFront's origins; the WAF on the distribution."""
    for distribution in (r for r in shown if SHOWN[r.type][1] == "CloudFront"):
        edges[("viewers", _node_id(distribution))].append("HTTPS")
        for waf in (r for r in shown if r.type == "aws:wafv2/webAcl:WebAcl"):
            if distribution.props.get("webAclId") == waf.props.get("arn"):
                graph.edge(
                    _node_id(waf),
                    _node_id(distribution),
                    label="filters",
                    style="dashed",
                    dir="none",
                )
        for origin in distribution.props.get("origins", []):
            domain = str(origin.get("domainName", ""))
            target = _origin_target(plan, shown, domain)
            if target is not None:
                label = f"origin {origin.get('originId', '')}"
                edges[(_node_id(distribution), _node_id(target))].insert(0, label)


def _origin_target(plan: Plan, shown: list[PlannedResource], domain: str) -> PlannedResource | None:
    for resource in shown:
        names = {str(resource.props.get(key, "")) for key in ("dnsName", "bucket", "functionUrl")}
        if any(name and (domain == name or domain.startswith(f"{name}.")) for name in names):
            return resource
    # A DNS record in front of the origin (e.g. origin.<domain> aliasing the ALB).
    for record in (r for r in plan.resources if r.type == "aws:route53/record:Record"):
        if str(record.props.get("name", "")).rstrip(".") == domain:
            aliases = [str(a.get("name", "")) for a in record.props.get("aliases") or []]
            for resource in shown:
                if str(resource.props.get("dnsName", "")) in aliases:
                    return resource
    return None


def _alerting_edges(
    graph: graphviz.Digraph, edges: Edges, plan: Plan, shown: list[PlannedResource]
) -> None:
    """Managed Prometheus's alertmanager → SNS topics → Chatbot (Slack) and email."""
    topics = [r for r in shown if r.type == "aws:sns/topic:Topic"]
    workspaces = [r for r in shown if r.type == "aws:amp/workspace:Workspace"]
    for definition in (r for r in plan.resources if "alertManagerDefinition" in r.type):
        text = " ".join(_strings(definition.props))
        for workspace in workspaces:
            for topic in topics:
                if str(topic.props.get("arn")) in text:
                    edges[(_node_id(workspace), _node_id(topic))].append("alertmanager")
    for chatbot in (r for r in shown if "chatbot" in r.type):
        for topic in topics:
            if str(topic.props.get("arn")) in _dig(chatbot.props, ("snsTopicArns",)):
                edges[(_node_id(topic), _node_id(chatbot))].append("")
        graph.node("slack", "Slack", shape="ellipse", fillcolor="#eeeeee")
        edges[(_node_id(chatbot), "slack")].append("")
    for subscription in (
        r for r in plan.resources if r.type == "aws:sns/topicSubscription:TopicSubscription"
    ):
        if subscription.props.get("protocol") != "email":
            continue
        graph.node("email", "Email", shape="ellipse", fillcolor="#eeeeee")
        for topic in topics:
            if topic.props.get("arn") == subscription.props.get("topic"):
                edges[(_node_id(topic), "email")].append("")
    for grafana in (r for r in shown if r.type == "aws:grafana/workspace:Workspace"):
        for workspace in workspaces:
            graph.edge(_node_id(grafana), _node_id(workspace), label="queries", style="dashed")


def offline_plan(stack: str) -> Plan:
    completed = subprocess.run(  # noqa: S603 - this interpreter, a fixed module
        [sys.executable, "-m", "infra_pulumi.plan", "--stack", stack, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return Plan.from_json(completed.stdout)


# The code's layers, top to bottom, as the import contracts state them.
CODE_LAYERS: dict[str, tuple[str, ...]] = {
    "entry points": ("api.main", "api.lambda_handler", "flows", "infra_pulumi", "dashboards"),
    "domains": (
        "api.auth",
        "api.account",
        "api.payments",
        "api.billing",
        "api.email",
        "api.ratelimit",
        "api.observability",
        "api.health",
        "api.middleware",
        "api.route_index",
    ),
    "platform": (
        "api.db",
        "api.user_cache",
        "api.redis_client",
        "api.redis_scripts",
        "api.settings",
        "api.errors",
        "api.logging_config",
        "api.models",
    ),
}


def code_graph() -> graphviz.Digraph:
    imports = grimp.build_graph("api", "flows", "infra_pulumi", "dashboards")
    modules = [m for layer in CODE_LAYERS.values() for m in layer if m in imports.modules]
    graph = graphviz.Digraph(
        "code",
        graph_attr={
            "rankdir": "TB",
            "label": "Slipway — code layers (imports point down)",
            "labelloc": "t",
            "fontsize": "20",
            "fontname": "Helvetica",
        },
        node_attr={"shape": "box", "style": "rounded", "fontname": "Helvetica"},
    )
    for title, layer in CODE_LAYERS.items():
        with graph.subgraph(name=f"cluster_{title.replace(' ', '_')}") as cluster:
            cluster.attr(label=title, style="rounded", color="#888888")
            for module in layer:
                if module in modules:
                    cluster.node(module)
    shown = sorted(modules, key=len, reverse=True)
    drawn: set[tuple[str, str]] = set()
    for module in sorted(imports.modules):
        source = _owner(module, shown)
        for imported in sorted(imports.find_modules_directly_imported_by(module)):
            target = _owner(imported, shown)
            if source and target and source != target and (source, target) not in drawn:
                drawn.add((source, target))
                graph.edge(source, target)
    return graph


def _owner(module: str, shown: list[str]) -> str | None:
    """The shown package or module that MODULE belongs to (the most specific one)."""
    return next((m for m in shown if module == m or module.startswith(f"{m}.")), None)


def erd_graph() -> graphviz.Digraph:
    """Tables as PostgreSQL declares them, grouped by the domain package that owns each."""
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
    from sqlmodel import SQLModel

    from api.models import metadata

    owners = {
        cast(Table, mapper.local_table).name: mapper.class_.__module__.rsplit(".", 1)[0]
        for mapper in SQLModel._sa_registry.mappers
    }
    graph = graphviz.Digraph(
        "erd",
        graph_attr={"rankdir": "LR", "fontname": "Helvetica"},
        node_attr={"shape": "plain", "fontname": "Helvetica", "fontsize": "10"},
    )
    dialect = PGDialect_psycopg()  # type: ignore[no-untyped-call]
    by_owner: dict[str, list[str]] = defaultdict(list)
    for table in metadata.sorted_tables:
        by_owner[owners.get(table.name, "api")].append(table.name)
        rows = "".join(
            f'<tr><td align="left">{"<b>" if column.primary_key else ""}{column.name}'
            f'{"</b>" if column.primary_key else ""}</td><td align="left"><font color="#666666">'
            f"{column.type.compile(dialect=dialect).lower()}</font></td></tr>"
            for column in table.columns
        )
        graph.node(
            table.name,
            f'<<table border="1" cellborder="0" cellspacing="0" cellpadding="3">'
            f'<tr><td colspan="2" bgcolor="#dddddd"><b>{table.name}</b></td></tr>{rows}</table>>',
        )
        for key in sorted(table.foreign_keys, key=lambda k: k.parent.name):
            graph.edge(table.name, key.column.table.name, label=key.parent.name, fontsize="9")
    for owner, tables in sorted(by_owner.items()):
        with graph.subgraph(name=f"cluster_{owner.replace('.', '_')}") as cluster:
            cluster.attr(label=owner, style="rounded,dashed", color="#888888")
            for name in tables:
                cluster.node(name)
    return graph


def stacks() -> list[str]:
    return sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))


def _stack_picture(stack: str) -> graphviz.Digraph:
    return stack_graph(offline_plan(stack))


def rendered() -> dict[Path, Callable[[], graphviz.Digraph]]:
    pictures: dict[Path, Callable[[], graphviz.Digraph]] = {
        ARCHITECTURE / f"{stack}.svg": partial(_stack_picture, stack) for stack in stacks()
    }
    pictures[ARCHITECTURE / "code-layers.svg"] = code_graph
    pictures[ERD_SVG] = erd_graph
    return pictures


def svg(graph: graphviz.Digraph) -> str:
    # Graphviz stamps its version in a comment: drop it so the files only change with the code.
    text = graph.pipe(format="svg", encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if "Generated by graphviz" not in line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a picture is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, build in rendered().items():
        picture = svg(build())
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != picture:
                stale.append(path.relative_to(ROOT))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(picture, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"stale: {path} (run `make diagrams`)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
