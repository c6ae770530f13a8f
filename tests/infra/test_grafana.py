"""Managed Grafana: people can sign in (SSO role associations from config), and the
provisioning token is replaced by a deploy before it expires."""

from __future__ import annotations

import datetime as dt

import pytest

from infra_pulumi.components.grafana import TOKEN_LIFETIME_SECONDS, token_period
from infra_pulumi.plan import Plan
from tests.infra.conftest import collect, of_type, one, run_offline

TOKEN = "aws:grafana/workspaceServiceAccountToken:WorkspaceServiceAccountToken"
ROLE_ASSOCIATION = "aws:grafana/roleAssociation:RoleAssociation"
WORKSPACE = "aws:grafana/workspace:Workspace"
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def deployed_31_days_later() -> Plan:
    """prod as a deploy 31 days after the session's own plan would see it (tokens live 30)."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    return collect(run_offline("prod", now=later.isoformat()))


def test_a_deploy_after_the_token_expired_plans_a_new_token(
    prod: Plan, deployed_31_days_later: Plan
) -> None:
    first, later = one(prod, TOKEN).props, one(deployed_31_days_later, TOKEN).props
    assert first["secondsToLive"] <= 30 * 24 * 3600
    # Every argument of a service account token forces a replacement: a changed one means
    # `pulumi up` creates a new token (and the Grafana provider is configured with its key).
    changed = {key for key in ("name", "secondsToLive") if first[key] != later[key]}
    assert changed, "day 31 plans the same token as day 0: it has expired and is not replaced"


def test_grafana_sign_in_groups_come_from_stack_config(prod: Plan) -> None:
    workspace = one(prod, WORKSPACE).props
    assert workspace["authenticationProviders"] == ["AWS_SSO"]
    roles = {r.props["role"]: r.props for r in of_type(prod, ROLE_ASSOCIATION)}
    assert set(roles) == {"ADMIN", "VIEWER"}
    for association in roles.values():
        assert association["workspaceId"] == workspace["id"]
        assert association["groupIds"]


def test_any_deploy_from_day_28_of_a_tokens_life_replaces_it() -> None:
    """Whenever a token was created, a deploy before its expiry (day 28 on) replaces it."""
    lifetime_days = TOKEN_LIFETIME_SECONDS // 86400
    for hours in range(0, 400 * 24, 7):
        created = START + dt.timedelta(hours=hours)
        for days in (lifetime_days - 2, lifetime_days):
            assert token_period(created + dt.timedelta(days=days)) != token_period(created)
