"""Runs a stack's program offline under Pulumi mocks and reports what it would create.

`pulumi preview` needs cloud credentials; this does not. It reads the real
`Pulumi.<stack>.yaml`, fills in only what an operator supplies at deploy time (the image tag
and the `--secret` values, as recognisable placeholders), registers every resource against
mocks and collects them. Tests run the policy pack's rules over the collected resources;
`make infra-plan STACK=prod` prints them as a table.

    python -m infra_pulumi.plan --stack prod           # table
    python -m infra_pulumi.plan --stack prod --json    # machine-readable (tests)

One run per process: Pulumi's runtime settings are process-global.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra_pulumi.config import NAMESPACE, SECRET_KEYS
from infra_pulumi.policies.model import STACK
from infra_pulumi.policies.rules import Resource, StackFacts, all_violations

REPO_ROOT = Path(__file__).resolve().parent.parent
MOCK_ACCOUNT = "123456789012"
PLACEHOLDER_IMAGE_TAG = "offline-plan"


def placeholder_secret(key: str) -> str:
    """A recognisable stand-in for a `--secret` value; tests look for it in outputs."""
    return f"offline-placeholder-{key}-0123456789abcdef0123456789abcdef"


@dataclass
class PlannedResource:
    type: str
    name: str
    urn: str
    custom: bool
    id: str
    props: dict[str, Any]
    parent: str = ""
    # URNs this resource waits for (explicit depends_on and inputs), as the engine orders them.
    dependencies: list[str] = field(default_factory=list)


@dataclass
class Plan:
    stack: str
    resources: list[PlannedResource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: list[str] = field(default_factory=list)

    def policy_resources(self) -> list[Resource]:
        """The resources as the policy pack sees them, plus the stack with its outputs."""
        resources = [Resource(r.type, r.name, r.props, r.urn) for r in self.resources if r.custom]
        stack_urn = f"urn:pulumi:{self.stack}::slipway::{STACK}::slipway-{self.stack}"
        resources.append(
            Resource(STACK, f"slipway-{self.stack}", {"outputs": self.outputs}, stack_urn)
        )
        return resources

    def by_urn(self, urn: str) -> PlannedResource:
        return next(r for r in self.resources if r.urn == urn)

    def depends_on(self, resource: PlannedResource, other: PlannedResource) -> bool:
        """Whether the engine creates `other` before `resource` (transitively)."""
        known = {r.urn: r for r in self.resources}
        pending, seen = list(resource.dependencies), set[str]()
        while pending:
            urn = pending.pop()
            if urn == other.urn:
                return True
            if urn not in seen and urn in known:
                seen.add(urn)
                pending.extend(known[urn].dependencies)
        return False

    def violations(self) -> list[tuple[str, str]]:
        return all_violations(self.policy_resources(), StackFacts.from_stack_name(self.stack))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @staticmethod
    def from_json(text: str) -> Plan:
        data = json.loads(text)
        return Plan(
            stack=data["stack"],
            resources=[PlannedResource(**r) for r in data["resources"]],
            outputs=data["outputs"],
            secret_outputs=data["secret_outputs"],
        )


def read_stack_config(stack: str, root: Path = REPO_ROOT) -> dict[str, str]:
    """`config:` of Pulumi.<stack>.yaml as Pulumi passes it to programs (strings)."""
    path = root / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    values: dict[str, str] = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            continue  # encrypted with the stack's key: offline runs use placeholders instead
        values[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return values


def offline_config(stack: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    values = read_stack_config(stack)
    values.setdefault(f"{NAMESPACE}:imageTag", PLACEHOLDER_IMAGE_TAG)
    for key in SECRET_KEYS:
        values.setdefault(f"{NAMESPACE}:{key}", placeholder_secret(key))
    values.update(overrides or {})
    return values


class OfflineMocks(pulumi.runtime.Mocks):
    """Answers like AWS would, with just enough computed outputs for the program to wire up."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.registered: list[tuple[str, str, bool, str, dict[str, Any], str]] = []

    def new_resource(
        self, args: pulumi.runtime.MockResourceArgs
    ) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(args.inputs)
        resource_id = f"{args.name}-id"
        outputs = {**inputs, **self._computed(args.typ, args.name, inputs), "id": resource_id}
        self.registered.append(
            (args.typ, args.name, bool(args.custom), resource_id, outputs, args.provider or "")
        )
        return resource_id, outputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        function = args.token.rsplit(":", 1)[-1]
        if function == "getCallerIdentity":
            arn = f"arn:aws:iam::{MOCK_ACCOUNT}:user/offline"
            return {
                "accountId": MOCK_ACCOUNT,
                "arn": arn,
                "userId": "offline",
                "id": MOCK_ACCOUNT,
            }, []
        if function == "getManagedPrefixList":
            return {"id": "pl-4fa04526", "name": args.args.get("name", "")}, []
        if function == "getParameter":
            return {
                "value": "ami-0offline000000000",
                "name": args.args.get("name", ""),
                "id": "ami",
            }, []
        return {}, []

    def _computed(self, typ: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        region = self.region
        physical = str(inputs.get("name") or inputs.get("bucket") or name)
        service = typ.split(":")[1].split("/")[0] if ":" in typ else "mock"
        outputs: dict[str, Any] = {
            "arn": f"arn:aws:{service}:{region}:{MOCK_ACCOUNT}:{physical}",
            "name": physical,
        }
        extra: dict[str, dict[str, Any]] = {
            "aws:rds/instance:Instance": {
                "address": f"{physical}.abc123.{region}.rds.amazonaws.com",
                "masterUserSecrets": [
                    {
                        "secretArn": (
                            f"arn:aws:secretsmanager:{region}:{MOCK_ACCOUNT}:secret:rds!db-{name}"
                        ),
                        "kmsKeyId": "mock",
                        "secretStatus": "active",
                    }
                ],
            },
            "aws:elasticache/replicationGroup:ReplicationGroup": {
                "primaryEndpointAddress": f"master.{physical}.abc123.cache.amazonaws.com"
            },
            "aws:cloudfront/distribution:Distribution": {
                "domainName": "d111111abcdef8.cloudfront.net"
            },
            "aws:lb/loadBalancer:LoadBalancer": {
                "dnsName": f"{physical}-1234.{region}.elb.amazonaws.com",
                "zoneId": "Z32O12XQLNTSW2",
            },
            "aws:ecr/repository:Repository": {
                "repositoryUrl": f"{MOCK_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{physical}"
            },
            "aws:amp/workspace:Workspace": {
                "prometheusEndpoint": f"https://aps-workspaces.{region}.amazonaws.com/workspaces/ws-offline/"
            },
            "aws:grafana/workspace:Workspace": {
                "endpoint": f"g-offline.grafana-workspace.{region}.amazonaws.com"
            },
            "aws:grafana/workspaceServiceAccount:WorkspaceServiceAccount": {
                "serviceAccountId": "sa-1"
            },
            "aws:grafana/workspaceServiceAccountToken:WorkspaceServiceAccountToken": {
                "key": "offline-grafana-token"
            },
            "aws:lambda/functionUrl:FunctionUrl": {
                "functionUrl": f"https://offline0function0url.lambda-url.{region}.on.aws/"
            },
            "aws:acm/certificate:Certificate": {
                "domainValidationOptions": [
                    {
                        "domainName": inputs.get("domainName", ""),
                        "resourceRecordName": f"_x.{inputs.get('domainName', '')}.",
                        "resourceRecordType": "CNAME",
                        "resourceRecordValue": "_y.acm-validations.aws.",
                    }
                ]
            },
            "aws:route53/record:Record": {"fqdn": str(inputs.get("name", name))},
            "aws:kms/key:Key": {"keyId": f"{name}-key-id"},
            "aws:sesv2/emailIdentity:EmailIdentity": {
                "arn": (
                    f"arn:aws:ses:{region}:{MOCK_ACCOUNT}:identity/{inputs.get('emailIdentity')}"
                ),
                "dkimSigningAttributes": {
                    "tokens": [f"offlinedkim{index}{name}" for index in range(3)],
                    "status": "PENDING",
                },
            },
            "aws:sesv2/configurationSet:ConfigurationSet": {
                "arn": (
                    f"arn:aws:ses:{region}:{MOCK_ACCOUNT}:configuration-set/"
                    f"{inputs.get('configurationSetName')}"
                ),
            },
            "aws:cognito/userPool:UserPool": {"id": f"{region}_Offline123"},
            "aws:serverlessrepository/cloudFormationStack:CloudFormationStack": {
                "outputs": {
                    "RotationLambdaARN": (
                        f"arn:aws:lambda:{region}:{MOCK_ACCOUNT}:function:{physical}"
                    )
                }
            },
            "random:index/randomPassword:RandomPassword": {
                "result": f"offline-random-{name}-0123456789abcdef0123456789abcdef"
            },
        }
        if service == "iam":
            # IAM ARNs are global and typed (role/..., oidc-provider/<issuer>).
            kind = typ.rsplit(":", 1)[-1]
            if kind == "OpenIdConnectProvider":
                issuer = str(inputs.get("url", "")).removeprefix("https://")
                outputs["arn"] = f"arn:aws:iam::{MOCK_ACCOUNT}:oidc-provider/{issuer}"
            else:
                outputs["arn"] = (
                    f"arn:aws:iam::{MOCK_ACCOUNT}:{kind[0].lower() + kind[1:]}/{physical}"
                )
        outputs.update(extra.get(typ, {}))
        return outputs


def run(
    stack: str, overrides: Mapping[str, str] | None = None, now: dt.datetime | None = None
) -> Plan:
    """Runs the program of `stack` under mocks, as a deploy at `now` would; once per process."""
    from infra_pulumi.config import from_pulumi
    from infra_pulumi.program import build

    values = offline_config(stack, overrides)
    mocks = OfflineMocks(values.get("aws:region", "eu-west-1"))
    monitor = _RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="slipway", stack=stack, preview=False, monitor=monitor)
    secret_keys = [f"{NAMESPACE}:{key}" for key in SECRET_KEYS]
    pulumi.runtime.set_all_config(values, secret_keys)

    plan = Plan(stack=stack)

    async def resolve(outputs: Mapping[str, pulumi.Input[str]]) -> None:
        for key, value in outputs.items():
            output = pulumi.Output.from_input(value)
            plan.outputs[key] = await output.future()
            if await output.is_secret():
                plan.secret_outputs.append(key)

    def program() -> None:
        _sync_await(resolve(build(from_pulumi(), now or dt.datetime.now(dt.UTC))))

    _sync_await(run_pulumi_func(program))
    # By type and name: resources of different types may share a name (a bucket and its
    # policy), and their mock ids are alike; keyed by name alone, one's URN overwrote the
    # other's, in whichever order the concurrent registrations happened to finish.
    urns = {
        _type_and_name(registration.urn): registration.urn
        for registration in monitor.get_registered_resources().values()
    }
    for typ, name, custom, resource_id, props, _provider in mocks.registered:
        plan.resources.append(
            PlannedResource(
                type=typ,
                name=name,
                urn=urns.get((typ, name), f"urn:pulumi:{stack}::slipway::{typ}::{name}"),
                custom=custom,
                id=resource_id,
                props=_plain(props),
            )
        )
        urn = plan.resources[-1].urn
        plan.resources[-1].dependencies = sorted(monitor.dependencies.get(urn, ()))
    return plan


def _type_and_name(urn: str) -> tuple[str, str]:
    """`urn:pulumi:<stack>::<project>::<parent types>$<type>::<name>` -> (type, name)."""
    qualified_type, name = urn.split("::")[2:]
    return qualified_type.rsplit("$", 1)[-1], name


class _RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping each resource's dependencies (the engine's ordering)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.dependencies: dict[str, set[str]] = {}

    def RegisterResource(self, request: Any) -> Any:  # the gRPC method this wraps
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        self.dependencies[response.urn] = set(request.dependencies)
        return response


SECRET_SIGNATURE = ("4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270")


def _plain(value: Any) -> Any:
    """JSON-able copy of mocked properties; secrets are unwrapped as CrossGuard shows them."""
    if isinstance(value, Mapping) and value.get(SECRET_SIGNATURE[0]) == SECRET_SIGNATURE[1]:
        return _plain(value.get("value"))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# Settings shown per resource type in the table (camelCase, as Pulumi passes them).
KEY_SETTINGS: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "cidrBlock"),
    "aws:ec2/natGateway:NatGateway": ("subnetId",),
    "aws:rds/instance:Instance": (
        "instanceClass",
        "engineVersion",
        "multiAz",
        "deletionProtection",
        "backupRetentionPeriod",
        "storageEncrypted",
        "publiclyAccessible",
    ),
    "aws:elasticache/replicationGroup:ReplicationGroup": (
        "engine",
        "nodeType",
        "numCacheClusters",
        "automaticFailoverEnabled",
        "transitEncryptionEnabled",
        "atRestEncryptionEnabled",
    ),
    "aws:s3/bucket:Bucket": ("bucket",),
    "aws:cloudfront/distribution:Distribution": ("aliases", "priceClass", "webAclId"),
    "aws:wafv2/webAcl:WebAcl": ("scope",),
    "aws:ecr/repository:Repository": ("name", "imageTagMutability"),
    "aws:ecs/service:Service": ("name", "desiredCount", "launchType", "waitForSteadyState"),
    "aws:ecs/taskDefinition:TaskDefinition": ("family", "cpu", "memory"),
    "aws:lb/loadBalancer:LoadBalancer": ("name", "internal"),
    "aws:lb/listenerRule:ListenerRule": ("priority",),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcEndpointType"),
    "aws:lambda/functionUrl:FunctionUrl": ("authorizationType",),
    "aws:lambda/function:Function": ("name", "memorySize", "packageType"),
    "aws:appautoscaling/target:Target": ("minCapacity", "maxCapacity"),
    "aws:ec2/instance:Instance": ("instanceType", "associatePublicIpAddress"),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("fromPort", "description"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:iam/role:Role": ("name",),
}


def render_table(plan: Plan, out: Any = sys.stdout) -> None:
    rows = [("TYPE", "NAME", "KEY SETTINGS")]
    for resource in sorted(plan.resources, key=lambda r: (r.type, r.name)):
        if not resource.custom:
            continue
        settings = ", ".join(
            f"{key}={_short(resource.props.get(key))}"
            for key in KEY_SETTINGS.get(resource.type, ())
            if resource.props.get(key) is not None
        )
        rows.append((resource.type, resource.name, settings))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}", file=out)
    custom = sum(1 for r in plan.resources if r.custom)
    violations = plan.violations()
    print(
        f"\n{custom} resources in stack {plan.stack!r}; policy violations: {len(violations)}",
        file=out,
    )
    for rule, message in violations:
        print(f"  [{rule}] {message}", file=out)
    print("Outputs:", file=out)
    for key, value in sorted(plan.outputs.items()):
        shown = "[secret]" if key in plan.secret_outputs else value
        print(f"  {key}: {shown}", file=out)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 48 else text[:45] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--stack", required=True, help="dev, staging or prod (reads Pulumi.<stack>.yaml)"
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value"
    )
    parser.add_argument(
        "--now",
        type=dt.datetime.fromisoformat,
        help="plan as a deploy at this ISO instant would (default: now); e.g. token rotation",
    )
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.set)
    plan = run(args.stack, overrides, args.now)
    if args.json:
        print(plan.to_json())
        return 0
    render_table(plan)
    # The policy pack's verdict: a violation fails the command (and the PR preview job).
    return 1 if plan.violations() else 0


if __name__ == "__main__":
    raise SystemExit(main())
