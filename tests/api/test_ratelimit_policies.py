"""The policy file (docs/rate-limits.md) and the GCRA arithmetic, without an app."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.main import create_app
from api.ratelimit.gcra import Decision, InProcessBackend
from api.ratelimit.policies import KeySpec, PolicyFileError, load_policy_set
from tests.conftest import make_settings

CONTRACT_DEFAULTS = {
    # policy: (quota, window seconds, key, routes)
    "login": (10, 60, "ip+body:email|username", ["POST /v1/auth/login", "POST /v1/auth/token"]),
    "register": (20, 3600, "ip", ["POST /v1/auth/register"]),
    "refresh": (60, 60, "ip", ["POST /v1/auth/refresh"]),
    "payments-create": (30, 60, "user", ["POST /v1/payments"]),
    "billing": (30, 60, "user", ["POST /v1/billing/*"]),
    # Account emails (docs/accounts.md): reset per IP and per address, resend per user.
    "password-reset": (10, 3600, "ip", ["POST /v1/auth/password-reset"]),
    "password-reset-email": (3, 3600, "body:email", []),
    "verify-email-resend": (5, 3600, "user", ["POST /v1/auth/verify-email/resend"]),
    "password-change": (10, 3600, "user", ["POST /v1/auth/password"]),
    "authenticated": (600, 60, "user", []),
    "anonymous": (300, 60, "ip", []),
    # Beside login and register (their companions): every credential check from one IP.
    "auth-ip": (30, 60, "ip", []),
}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(text)
    return path


def _summary(path: Path | None = None) -> dict[str, tuple[int, int, str, list[str]]]:
    policies = load_policy_set(path).policies
    return {
        name: (p.quota, p.window_seconds, str(p.key), [r.text for r in p.routes])
        for name, p in policies.items()
    }


def test_bundled_defaults_are_the_contract_table() -> None:
    assert _summary() == CONTRACT_DEFAULTS
    exempt = [pattern.text for pattern in load_policy_set().exempt]
    assert exempt == ["POST /v1/webhooks/stripe", "/healthz", "/readyz", "/metrics"]


def test_two_lines_raise_one_quota_and_keep_everything_else(tmp_path: Path) -> None:
    summary = _summary(_write(tmp_path, "[policies.login]\nquota = 25\n"))
    assert summary["login"] == (25, 60, "ip+body:email|username", CONTRACT_DEFAULTS["login"][3])
    assert {name: value for name, value in summary.items() if name != "login"} == {
        name: value for name, value in CONTRACT_DEFAULTS.items() if name != "login"
    }


def test_any_subset_of_fields_and_policies_can_be_overridden(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
exempt = ["/healthz"]
[policies.register]
window_seconds = 600
[policies.refresh]
key = "user"
routes = ["POST /v1/auth/refresh", "POST /v1/auth/logout"]
[policies.search]
quota = 5
window_seconds = 1
key = "ip"
routes = ["GET /v1/search/*"]
""",
    )
    summary = _summary(path)
    assert summary["register"] == (20, 600, "ip", ["POST /v1/auth/register"])
    assert summary["refresh"] == (60, 60, "user", ["POST /v1/auth/refresh", "POST /v1/auth/logout"])
    assert summary["search"] == (5, 1, "ip", ["GET /v1/search/*"])
    assert [pattern.text for pattern in load_policy_set(path).exempt] == ["/healthz"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[policies.login]\nquota = 0\n", "policies.login.quota must be an integer"),
        ('[policies.login]\nquota = "ten"\n', "policies.login.quota must be an integer"),
        ("[policies.login]\nquota = true\n", "policies.login.quota must be an integer"),
        ("[policies.login]\nwindow_seconds = -60\n", "policies.login.window_seconds"),
        ('[policies.login]\nkey = "cookie"\n', "policies.login.key must be"),
        ("[policies.login]\nburst = 3\n", "policies.login: unknown fields ['burst']"),
        ("[policies.new]\nquota = 3\n", "policies.new is a new policy and must set"),
        ('[policies.login]\nroutes = ["FETCH /v1/x"]\n', "unknown method 'FETCH'"),
        ('[policies.login]\nroutes = ["v1/x"]\n', "the path must start with /"),
        ('[policies.login]\nroutes = ["/v1/x*"]\n', "a wildcard must follow a slash"),
        (
            '[policies.register]\nroutes = ["POST /v1/auth/login"]\n',
            "listed under both login and register",
        ),
        ('exempt = ["POST /v1/auth/register"]\n', "listed under both exempt and register"),
        ("limits = 3\n", "unknown top-level keys ['limits']"),
        ("[policies.login\n", "invalid TOML"),
        (
            '[policies."bad name"]\nquota = 1\nwindow_seconds = 1\nkey = "ip"\nroutes = []\n',
            "bad name",
        ),
    ],
)
def test_invalid_files_are_refused_naming_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyFileError) as error:
        load_policy_set(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_the_app_refuses_to_start_with_a_missing_policy_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    settings = make_settings("sqlite+aiosqlite:///:memory:", rate_limits_file=missing)
    with pytest.raises(PolicyFileError, match="cannot read"):
        create_app(settings)


def test_the_most_specific_route_entry_wins(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[policies.wide]
quota = 1
window_seconds = 1
key = "ip"
routes = ["/v1/things/*"]
[policies.any-method]
quota = 1
window_seconds = 1
key = "ip"
routes = ["/v1/things/{thing_id}"]
[policies.exact]
quota = 1
window_seconds = 1
key = "ip"
routes = ["POST /v1/things/{thing_id}"]
""",
    )
    policies = load_policy_set(path)

    def chosen(method: str, template: str) -> str | None:
        policy = policies.policy_for(method, template, requires_bearer=False)
        return policy.name if policy else None

    assert chosen("POST", "/v1/things/{thing_id}") == "exact"
    assert chosen("GET", "/v1/things/{thing_id}") == "any-method"
    assert chosen("GET", "/v1/things/{thing_id}/parts") == "wide"
    assert chosen("GET", "/v1/other") == "anonymous"
    assert policies.policy_for("GET", "/v1/other", requires_bearer=True) == (policies.authenticated)
    assert chosen("POST", "/v1/webhooks/stripe") is None


def test_key_specs() -> None:
    assert KeySpec.parse("ip+body:email|username") == KeySpec("ip+body", ("email", "username"))
    for bad in ("ip+body:", "ip+body:a b", "user+ip", ""):
        with pytest.raises(ValueError, match="must be"):
            KeySpec.parse(bad)


# --- GCRA ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONTRACT_DEFAULTS))
def test_gcra_admits_the_quota_at_once_then_refuses_until_retry_after(name: str) -> None:
    policy = load_policy_set().policies[name]
    backend = InProcessBackend()
    now = 1_700_000_000_000
    decisions = [backend.decide("k", policy, now) for _ in range(policy.quota)]
    assert all(decision.allowed for decision in decisions)
    assert [decision.remaining for decision in decisions] == list(range(policy.quota - 1, -1, -1))
    assert decisions[-1].reset_seconds == policy.window_seconds
    refused = backend.decide("k", policy, now)
    assert refused == Decision(False, 0, policy.window_seconds, refused.retry_after_seconds)
    retry_ms = refused.retry_after_seconds * 1000
    # Never too early: a second before Retry-After is still refused, at Retry-After it passes.
    if refused.retry_after_seconds > 1:
        assert not backend.decide("k", policy, now + retry_ms - 1000).allowed
    assert backend.decide("k", policy, now + retry_ms).allowed


def test_gcra_never_admits_more_than_the_quota_at_once() -> None:
    """No boundary effect: in any span of s ms at most quota + s / interval requests pass
    (a fixed window lets 2x the quota through within moments across its boundary)."""
    policy = load_policy_set().policies["login"]  # 10 per 60 s: one every 6 s after a burst
    backend = InProcessBackend()
    start = 1_700_000_000_000
    admitted = [
        t for t in range(start, start + 300_000, 250) if backend.decide("k", policy, t).allowed
    ]
    for first in admitted:
        for span in (1, 1000, 6000, 60_000):
            in_span = [t for t in admitted if first <= t < first + span]
            assert len(in_span) <= policy.quota + span // policy.interval_ms
    # Sustained, the rate is the quota per window.
    assert len(admitted) == policy.quota + 300_000 // policy.interval_ms - 1


def test_in_process_store_forgets_idle_keys_when_full() -> None:
    policy = load_policy_set().policies["login"]
    backend = InProcessBackend(max_keys=100)
    now = 1_700_000_000_000
    for n in range(100):
        backend.decide(f"old-{n}", policy, now)
    backend.decide("new", policy, now + 120_000)  # every old key is back at its full quota
    assert len(backend) == 1


def test_the_per_address_companion_is_configured_like_any_policy(tmp_path: Path) -> None:
    policies = load_policy_set().policies
    assert policies["login"].companions == ("auth-ip",)
    assert policies["register"].companions == ("auth-ip",)
    raised = load_policy_set(_write(tmp_path, "[policies.auth-ip]\nquota = 100\n")).policies
    assert raised["auth-ip"].quota == 100
    dropped = load_policy_set(_write(tmp_path, "[policies.login]\ncompanions = []\n")).policies
    assert dropped["login"].companions == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[policies.login]\ncompanions = ["nope"]\n', "'nope' is not another policy"),
        ('[policies.login]\ncompanions = ["login"]\n', "'login' is not another policy"),
        ('[policies.refresh]\ncompanions = ["login"]\n', "'login' has companions of its own"),
        (
            '[policies.login]\ncompanions = []\n[policies.refresh]\ncompanions = ["login"]\n',
            "'login' must key on ip or user",
        ),
        ("[policies.login]\ncompanions = 3\n", "policies.login.companions must be a list"),
    ],
)
def test_companions_are_checked_at_load_time(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyFileError, match=message):
        load_policy_set(_write(tmp_path, text))
