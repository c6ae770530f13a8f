"""What each stack builds, read from its mocked resources: the staging/prod differences, the
component structure, the outputs, and how secrets and alerts are wired."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from infra_pulumi import alerting
from infra_pulumi.components.ci_identity import GITHUB_ISSUER
from infra_pulumi.config import SECRET_KEYS
from infra_pulumi.plan import Plan, placeholder_secret, read_stack_config, render_table
from tests.infra.conftest import of_type, one

RDS = "aws:rds/instance:Instance"
NAT = "aws:ec2/natGateway:NatGateway"
SUBNET = "aws:ec2/subnet:Subnet"
WAF = "aws:wafv2/webAcl:WebAcl"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
ECS_SERVICE = "aws:ecs/service:Service"
LAMBDA = "aws:lambda/function:Function"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
CACHE = "aws:elasticache/replicationGroup:ReplicationGroup"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SCALING_TARGET = "aws:appautoscaling/target:Target"
SCALING_POLICY = "aws:appautoscaling/policy:Policy"
EXPECTED_OUTPUTS = {
    "apiUrl",
    "cloudfrontDomain",
    "ecrRepositoryUrl",
    "grafanaUrl",
    "prefectUiUrl",
    "deployRoleArn",
}


def test_prod_database_is_multi_az_protected_and_keeps_30_days(prod: Plan, staging: Plan) -> None:
    prod_db, staging_db = one(prod, RDS).props, one(staging, RDS).props
    assert prod_db["multiAz"] is True
    assert prod_db["deletionProtection"] is True
    assert prod_db["backupRetentionPeriod"] == 30
    assert prod_db["skipFinalSnapshot"] is False
    assert staging_db["multiAz"] is False
    assert staging_db["deletionProtection"] is False
    assert staging_db["backupRetentionPeriod"] == 7
    assert prod_db["engine"] == staging_db["engine"] == "postgres"
    assert prod_db["engineVersion"].startswith("16")


def test_prod_has_a_nat_per_az_and_staging_one(prod: Plan, staging: Plan) -> None:
    prod_zones = {s.props["availabilityZone"] for s in of_type(prod, SUBNET)}
    staging_zones = {s.props["availabilityZone"] for s in of_type(staging, SUBNET)}
    assert len(prod_zones) == 3
    assert len(staging_zones) == 2
    assert len(of_type(prod, NAT)) == 3
    assert len(of_type(staging, NAT)) == 1
    # public, private and isolated subnets in every zone
    assert len(of_type(prod, SUBNET)) == 9
    assert len(of_type(staging, SUBNET)) == 6


def test_prod_cloudfront_is_behind_waf_with_a_rate_rule(prod: Plan, staging: Plan) -> None:
    acl = one(prod, WAF).props
    assert acl["scope"] == "CLOUDFRONT"
    assert any("rateBasedStatement" in rule["statement"] for rule in acl["rules"])
    managed = {
        rule["statement"]["managedRuleGroupStatement"]["name"]
        for rule in acl["rules"]
        if "managedRuleGroupStatement" in rule["statement"]
    }
    assert "AWSManagedRulesCommonRuleSet" in managed
    assert one(prod, DISTRIBUTION).props["webAclId"] == one(prod, WAF).props["arn"]
    assert of_type(staging, WAF) == []


def test_prod_runs_the_api_on_ecs_with_target_tracking(prod: Plan) -> None:
    service = one(prod, ECS_SERVICE, "compute-api").props
    assert service["launchType"] == "FARGATE"
    assert service["networkConfiguration"]["assignPublicIp"] is False
    target = one(prod, SCALING_TARGET).props
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 10)
    policy = one(prod, SCALING_POLICY).props
    assert policy["policyType"] == "TargetTrackingScaling"
    assert of_type(prod, LAMBDA) == []


def test_dev_stacks_run_the_same_image_as_lambda_with_a_function_url(dev: Plan) -> None:
    function = one(dev, LAMBDA).props
    repository = one(dev, "aws:ecr/repository:Repository", "compute-api").props
    assert function["packageType"] == "Image"
    assert function["imageUri"].startswith(repository["repositoryUrl"] + ":")
    assert function["imageConfig"]["commands"] == ["api.lambda_handler.handler"]
    assert one(dev, FUNCTION_URL).props["functionName"] == function["name"]
    assert of_type(dev, ECS_SERVICE) == []  # nothing runs while nobody calls the API
    api_origin = one(dev, DISTRIBUTION).props["origins"][1]
    assert api_origin["domainName"].endswith(".lambda-url.eu-west-1.on.aws")


def test_staging_runs_prods_topology_smaller(staging: Plan, prod: Plan) -> None:
    """Staging rehearses prod: the API on ECS behind the ALB with its ADOT sidecar, the same
    services and the same alert rules; only sizes and counts differ."""
    for plan in (staging, prod):
        assert of_type(plan, LAMBDA) == []
    names = {s.name for s in of_type(staging, ECS_SERVICE)}
    assert names == {s.name for s in of_type(prod, ECS_SERVICE)}
    assert "compute-api" in names
    containers = json.loads(one(staging, TASK, "compute-api").props["containerDefinitions"])
    assert [c["name"] for c in containers] == ["api", "adot-collector"]
    rules = "aws:amp/ruleGroupNamespace:RuleGroupNamespace"
    assert {r.props["data"] for r in of_type(staging, rules)} == {
        r.props["data"] for r in of_type(prod, rules)
    }
    assert len(of_type(staging, NAT)) == 1
    assert len(of_type(staging, "aws:lb/loadBalancer:LoadBalancer")) == 1


def test_dev_stacks_are_cheap_and_page_nobody(dev: Plan) -> None:
    """No NAT gateway, no cache, no Prefect, no bastion; and with no metrics pipeline there is
    no alert rule that would wait forever for a metric the stack cannot produce."""
    kinds = {r.type for r in dev.resources}
    for absent in (
        NAT,
        CACHE,
        "aws:amp/workspace:Workspace",
        "aws:amp/ruleGroupNamespace:RuleGroupNamespace",
        "aws:amp/alertManagerDefinition:AlertManagerDefinition",
        "aws:ec2/instance:Instance",
        "aws:lb/loadBalancer:LoadBalancer",
    ):
        assert absent not in kinds, absent
    assert one(dev, RDS).props["multiAz"] is False
    endpoint = one(dev, "aws:ec2/vpcEndpoint:VpcEndpoint", "network-secretsmanager").props
    assert endpoint["privateDnsEnabled"] is True
    function = one(dev, LAMBDA).props
    references = json.loads(function["environment"]["variables"]["SECRET_ARNS"])
    assert "REDIS_URL" not in references  # the API limits rates in process


def test_staging_is_cheaper(prod: Plan, staging: Plan) -> None:
    assert one(staging, RDS).props["instanceClass"] == "db.t4g.micro"
    assert one(prod, RDS).props["instanceClass"] != "db.t4g.micro"
    assert one(staging, CACHE).props["numCacheClusters"] == 1
    assert one(prod, CACHE).props["numCacheClusters"] == 2
    assert one(prod, CACHE).props["automaticFailoverEnabled"] is True
    assert len(staging.resources) < len(prod.resources)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_resource_belongs_to_a_component(plans: dict[str, Plan], stack: str) -> None:
    components = {r.type for r in plans[stack].resources if not r.custom}
    assert len(components) >= 12
    for resource in plans[stack].resources:
        if resource.custom:
            # parent=self puts the component's type in the child's qualified type.
            qualified_type = resource.urn.split("::")[2]
            parents = qualified_type.split("$")[:-1]
            assert any(p.startswith("slipway:") for p in parents), resource.urn


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_outputs_are_complete_and_hold_no_secret(plans: dict[str, Plan], stack: str) -> None:
    plan = plans[stack]
    assert set(plan.outputs) >= EXPECTED_OUTPUTS
    assert plan.secret_outputs == []
    rendered = json.dumps(plan.outputs)
    for key in SECRET_KEYS:
        assert placeholder_secret(key) not in rendered
    assert plan.outputs["apiUrl"] == f"https://{read_stack_config(stack)['slipway:domainName']}"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_secrets_reach_secrets_manager_but_never_task_or_function_definitions(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    versions = json.dumps(
        [r.props for r in of_type(plan, "aws:secretsmanager/secretVersion:SecretVersion")]
    )
    definitions = json.dumps([r.props for r in [*of_type(plan, TASK), *of_type(plan, LAMBDA)]])
    for key in SECRET_KEYS:
        if key == "redisAuthToken":
            continue  # it only travels inside the REDIS_URL secret
        assert placeholder_secret(key) in versions  # the check below could fail
        assert placeholder_secret(key) not in definitions


def test_api_task_takes_secrets_by_reference_and_sidecar_scrapes_with_the_token(prod: Plan) -> None:
    containers = json.loads(one(prod, TASK, "compute-api").props["containerDefinitions"])
    api, adot = containers
    secrets = {s["name"]: s["valueFrom"] for s in api["secrets"]}
    # No database credentials at task start: the API reads its role's secret when it connects.
    assert set(secrets) == {
        "JWT_PRIVATE_KEYS",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRETS",
        "METRICS_TOKEN",
        "REDIS_URL",
        "ORIGIN_VERIFY_SECRET",
    }
    assert all(value.startswith("arn:aws:secretsmanager:") for value in secrets.values())
    collector = json.loads(
        next(e["value"] for e in adot["environment"] if e["name"] == "AOT_CONFIG_CONTENT")
    )
    scrape = collector["receivers"]["prometheus"]["config"]["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["authorization"]["credentials"] == "${env:METRICS_TOKEN}"
    assert [s["name"] for s in adot["secrets"]] == ["METRICS_TOKEN"]
    endpoint = collector["exporters"]["prometheusremotewrite"]["endpoint"]
    assert endpoint == prod.outputs["prometheusEndpoint"].rstrip("/") + "/api/v1/remote_write"


def test_sidecar_labels_each_tasks_series_with_its_own_task_id(prod: Plan) -> None:
    """Every sidecar scrapes localhost:8000: without a per-task label all tasks would send the
    same `instance`/`job` and their series would collide in AMP."""
    _, adot = json.loads(one(prod, TASK, "compute-api").props["containerDefinitions"])
    collector = json.loads(
        next(e["value"] for e in adot["environment"] if e["name"] == "AOT_CONFIG_CONTENT")
    )
    pipeline = collector["service"]["pipelines"]["metrics"]
    processors = collector["processors"]
    detectors = [
        name for name in pipeline["processors"] if name.split("/")[0] == "resourcedetection"
    ]
    assert detectors, pipeline
    assert "ecs" in processors[detectors[0]]["detectors"]
    # `service.instance.id` becomes the remote-written `instance` label; it must come from the
    # detected task id, after detection has run.
    copies = [
        (name, attribute)
        for name in pipeline["processors"]
        if name.split("/")[0] == "resource"
        for attribute in processors[name]["attributes"]
        if attribute["key"] == "service.instance.id"
    ]
    assert len(copies) == 1, copies
    name, attribute = copies[0]
    assert attribute == {
        "key": "service.instance.id",
        "from_attribute": "aws.ecs.task.id",
        "action": "upsert",
    }
    assert pipeline["processors"].index(detectors[0]) < pipeline["processors"].index(name)
    # The target is the same in every task, so it cannot be what tells them apart.
    scrape = collector["receivers"]["prometheus"]["config"]["scrape_configs"][0]
    assert scrape["static_configs"] == [{"targets": ["localhost:8000"]}]


@pytest.mark.parametrize(
    ("stack", "role_name", "environment", "output"),
    [
        ("staging", "ci-deploy", "staging", "deployRoleArn"),
        ("prod", "ci-deploy", "production", "deployRoleArn"),
    ],
)
def test_ci_role_trust_pins_audience_and_subject(
    plans: dict[str, Plan], stack: str, role_name: str, environment: str, output: str
) -> None:
    role = one(plans[stack], ROLE, role_name).props
    (statement,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert statement["Principal"]["Federated"].endswith(f"oidc-provider/{GITHUB_ISSUER}")
    assert statement["Condition"] == {
        "StringEquals": {
            f"{GITHUB_ISSUER}:aud": "sts.amazonaws.com",
            f"{GITHUB_ISSUER}:sub": f"repo:slipway-dev/slipway:environment:{environment}",
        }
    }
    assert plans[stack].outputs[output] == role["arn"]


def test_no_ci_role_exists_for_pull_request_previews(plans: dict[str, Plan]) -> None:
    """Previews plan offline; the CI roles are the real environment's deploy role and the
    front-end repository's static-publish role (tests/infra/test_static_publish.py)."""
    for plan in plans.values():
        assert sorted(r.name for r in of_type(plan, ROLE) if r.name.startswith("ci-")) in (
            [],
            ["ci-deploy", "ci-static"],
        )
        assert "previewRoleArn" not in plan.outputs


def _statements(plan: Plan, name: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = json.loads(one(plan, ROLE_POLICY, name).props["policy"])[
        "Statement"
    ]
    return statements


def test_flow_runs_may_touch_only_backups_reports_their_key_secrets_and_pages(prod: Plan) -> None:
    statements = _statements(prod, "flows-flow-runs")
    granted = {
        (action, resource)
        for s in statements
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        for resource in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    }
    bucket = prod.outputs["backupBucket"]
    reports = prod.outputs["reportsBucket"]
    key = one(prod, "aws:kms/key:Key").props["arn"]
    db_secret = one(prod, RDS).props["masterUserSecrets"][0]["secretArn"]
    secret = "aws:secretsmanager/secret:Secret"
    stripe = one(prod, secret, "secrets-stripe-secret-key").props["arn"]
    git_token = one(prod, secret, "flows-tech-debt-git-token").props["arn"]
    pages = one(prod, "aws:sns/topic:Topic", "observability-pages").props["arn"]
    assert all(s["Effect"] == "Allow" for s in statements)
    assert granted == {
        ("s3:ListBucket", f"arn:aws:s3:::{bucket}"),
        *{(a, f"arn:aws:s3:::{bucket}/*") for a in ("s3:GetObject", "s3:PutObject")},
        ("s3:AbortMultipartUpload", f"arn:aws:s3:::{bucket}/*"),
        ("s3:ListBucket", f"arn:aws:s3:::{reports}"),
        # Reports: their prefix only, never the rest of the bucket.
        *{(a, f"arn:aws:s3:::{reports}/reports/*") for a in ("s3:GetObject", "s3:PutObject")},
        *{(a, key) for a in ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey")},
        *{("secretsmanager:GetSecretValue", s) for s in (db_secret, stripe, git_token)},
        ("sns:Publish", pages),
    }
    (listing,) = [s for s in statements if s["Sid"] == "ReportsList"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["reports/*"]}}


def test_prefect_ui_sits_behind_cognito_on_the_alb(staging: Plan) -> None:
    rule = one(staging, "aws:lb/listenerRule:ListenerRule", "flows-ui-https").props
    actions = sorted(rule["actions"], key=lambda a: a["order"])
    assert [a["type"] for a in actions] == ["authenticate-cognito", "forward"]
    assert rule["conditions"] == [
        {"hostHeader": {"values": ["prefect.staging.slipway.example.com"]}}
    ]
    # It shares the API's load balancer, whose API route needs CloudFront's origin secret.
    listener = one(staging, "aws:lb/listener:Listener").props
    assert rule["listenerArn"] == listener["arn"]
    assert [a["type"] for a in listener["defaultActions"]] == ["fixed-response"]
    api = one(staging, "aws:lb/listenerRule:ListenerRule", "compute-api-from-cloudfront").props
    (condition,) = api["conditions"]
    assert condition["httpHeader"]["httpHeaderName"] == "X-Origin-Verify"
    assert staging.outputs["prefectUiUrl"] == "https://prefect.staging.slipway.example.com"


def deployed_alertmanager(plan: Plan) -> alerting.AlertManagerDefinition:
    resource = one(plan, "aws:amp/alertManagerDefinition:AlertManagerDefinition")
    return alerting.AlertManagerDefinition.parse(resource.props["definition"])


def test_alerts_route_page_to_slack_and_ticket_to_email(prod: Plan) -> None:
    config = deployed_alertmanager(prod).config
    routes = {r["match"]["severity"]: r["receiver"] for r in config["route"]["routes"]}
    receivers = {r["name"]: r["sns_configs"][0] for r in config["receivers"]}
    pages = one(prod, "aws:sns/topic:Topic", "observability-pages").props["arn"]
    tickets = one(prod, "aws:sns/topic:Topic", "observability-tickets").props["arn"]
    assert receivers[routes["page"]]["topic_arn"] == pages
    assert receivers[routes["ticket"]]["topic_arn"] == tickets
    # Chatbot drops anything but its custom-notification JSON; e-mail gets text.
    assert "slipway.chatbot.message" in receivers[routes["page"]]["message"]
    assert "slipway.email.message" in receivers[routes["ticket"]]["message"]
    chatbot = one(prod, "aws:chatbot/slackChannelConfiguration:SlackChannelConfiguration").props
    assert chatbot["snsTopicArns"] == [pages]
    email = one(prod, "aws:sns/topicSubscription:TopicSubscription").props
    assert (email["topic"], email["protocol"]) == (tickets, "email")


def test_alert_messages_link_to_the_stacks_repository_and_grafana(prod: Plan) -> None:
    (template,) = deployed_alertmanager(prod).template_files.values()
    repository = read_stack_config("prod")["slipway:githubRepository"]
    assert '"slipway.stack" }}slipway-prod{{' in template
    assert f"https://github.com/{repository}/blob/main/" in template
    assert prod.outputs["grafanaUrl"] in template


def test_rule_files_and_dashboards_are_provisioned(prod: Plan) -> None:
    namespaces = of_type(prod, "aws:amp/ruleGroupNamespace:RuleGroupNamespace")
    assert {n.props["name"] for n in namespaces} == {f.name for f in alerting.load_rule_files()}
    dashboards = of_type(prod, "grafana:oss/dashboard:Dashboard")
    assert len(dashboards) == len(alerting.load_dashboards())
    kinds = {r.type for r in prod.resources}
    assert {"grafana:oss/dataSource:DataSource", "grafana:oss/folder:Folder"} <= kinds


def test_grafana_has_no_notification_path_that_cannot_deliver(prod: Plan) -> None:
    """Managed Grafana has no e-mail contact point type and evaluates no alert rule: AMP's
    alert manager is the only notification path, so Grafana gets no contact point, no policy,
    and no permission to publish."""
    assert not [r for r in prod.resources if r.type.startswith("grafana:alerting/")]
    workspace = one(prod, "aws:grafana/workspace:Workspace").props
    assert not workspace.get("notificationDestinations")
    assert not [r for r in of_type(prod, ROLE_POLICY) if r.props["role"] == "observability-grafana"]


def test_missing_or_empty_dashboard_folders_are_tolerated(tmp_path: Path) -> None:
    assert alerting.load_dashboards(tmp_path / "missing") == []
    assert alerting.load_rule_files(tmp_path) == []
    (tmp_path / "api.json").write_text('{"id": 7, "title": "API"}')
    (tmp_path / "rules_test.yml").write_text("rule_files: [x.yml]\n")
    (tmp_path / "slo.yml").write_text("groups: []\n")
    (dashboard,) = alerting.load_dashboards(tmp_path)
    assert json.loads(dashboard.json_text) == {"title": "API"}
    assert [f.name for f in alerting.load_rule_files(tmp_path)] == ["slo"]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_migrations_run_as_a_one_off_task_with_the_api_image_and_settings(
    plans: dict[str, Plan], stack: str
) -> None:
    plan = plans[stack]
    (migrate,) = json.loads(one(plan, TASK, "compute-migrate").props["containerDefinitions"])
    assert migrate["command"][-3:] == ["alembic", "upgrade", "head"]
    assert migrate["image"].startswith(plan.outputs["ecrRepositoryUrl"] + ":")
    assert {s["name"] for s in migrate["secrets"]} >= {"DATABASE_PASSWORD", "JWT_PRIVATE_KEYS"}
    assert plan.outputs["migrationTaskFamily"] == f"slipway-{stack}-migrate"
    network = json.loads(plan.outputs["runTaskNetwork"])["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "DISABLED"
    assert network["securityGroups"] == ["security-app-id"]


def test_plan_table_lists_resources_violations_and_outputs(prod: Plan) -> None:
    out = io.StringIO()
    render_table(prod, out)
    text = out.getvalue()
    assert text.splitlines()[0].split() == ["TYPE", "NAME", "KEY", "SETTINGS"]
    assert "aws:rds/instance:Instance" in text
    assert "multiAz=true" in text
    assert "policy violations: 0" in text
    assert f"apiUrl: {prod.outputs['apiUrl']}" in text


def test_flows_run_in_the_process_worker_under_the_flows_role(prod: Plan) -> None:
    task = one(prod, TASK, "flows-prefect-worker").props
    assert task["taskRoleArn"] == prod.outputs["flowsRoleArn"]
    (worker,) = json.loads(task["containerDefinitions"])
    assert worker["command"][-6:] == [
        "worker", "start", "--pool", "slipway-process", "--type", "process",
    ]  # fmt: skip
    assert worker["image"].startswith(prod.outputs["flowsEcrRepositoryUrl"] + ":")
    env = {e["name"]: e["value"] for e in worker["environment"]}
    assert env["BACKUP_BUCKET"] == prod.outputs["backupBucket"]
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert {s["name"] for s in worker["secrets"]} == {
        "DATABASE_USER",
        "DATABASE_PASSWORD",
        "STRIPE_SECRET_KEY",
    }


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_resource_has_its_own_urn(plans: dict[str, Plan], stack: str) -> None:
    """Resources that share a logical name (a bucket, its policy, its public-access block)
    each keep their own URN: dependencies, policies and the pictures look resources up by it."""
    resources = plans[stack].resources
    for resource in resources:
        qualified_type, name = resource.urn.split("::")[2:]
        assert (qualified_type.rsplit("$", 1)[-1], name) == (resource.type, resource.name)
    assert len({resource.urn for resource in resources}) == len(resources)
