"""Settings: validated, and refusing insecure deployments with messages that name variables."""

from __future__ import annotations

import ipaddress

import pytest

from api.settings import Settings, SettingsError, load_settings

SECURE_PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://app:pw@db.internal:5432/slipway",
    "REDIS_URL": "rediss://cache.internal:6379/0",
    "JWT_PRIVATE_KEYS": "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n",
    "METRICS_TOKEN": "m" * 40,
    "EMAIL_BACKEND": "ses",
    "EMAIL_FROM": "no-reply@example.com",
    "EMAIL_LINK_BASE_URL": "https://app.example.com",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch):
    def apply(values: dict[str, str]) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return apply


def test_development_defaults_need_nothing() -> None:
    settings = Settings()
    assert settings.database_url.startswith("sqlite+aiosqlite://")
    assert settings.access_token_ttl_seconds == 900
    assert settings.refresh_token_ttl_seconds == 1_209_600


def test_postgresql_urls_are_mapped_to_psycopg() -> None:
    assert (
        Settings(database_url="postgresql://u@h/db").database_url == "postgresql+psycopg://u@h/db"
    )
    assert Settings(database_url="postgres://u@h/db").database_url == "postgresql+psycopg://u@h/db"


def test_lists_are_comma_separated(environment) -> None:
    environment(
        {
            "TRUSTED_PROXIES": "10.0.0.0/8, 2001:db8::/32",
            "STRIPE_WEBHOOK_SECRETS": "whsec_old,whsec_new",
            "CORS_ORIGINS": "https://a.example, https://b.example",
            "BILLING_REDIRECT_ORIGINS": "https://App.example/, http://localhost:3000",
        }
    )
    settings = load_settings()
    assert settings.trusted_proxies == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    ]
    assert [s.get_secret_value() for s in settings.stripe_webhook_secrets] == [
        "whsec_old",
        "whsec_new",
    ]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.billing_redirect_origins == ["https://app.example", "http://localhost:3000"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APP_ENV", "prod"),
        ("DATABASE_URL", "mysql://x/y"),
        ("REDIS_URL", "http://cache"),
        ("TRUSTED_PROXIES", "not-a-network"),
        ("STRIPE_WEBHOOK_SECRETS", "sk_live_oops"),
        ("ACCESS_TOKEN_TTL_SECONDS", "0"),
        ("STRIPE_API_BASE", "ftp://x"),
        ("BILLING_REDIRECT_ORIGINS", "https://app.example/checkout"),
        ("BILLING_REDIRECT_ORIGINS", "app.example"),
        ("BILLING_GRACE_PERIOD_DAYS", "-1"),
    ],
)
def test_invalid_values_are_refused_naming_the_variable(environment, name, value) -> None:
    environment({name: value})
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert name in str(error.value)


def test_secure_production_configuration_loads(environment) -> None:
    environment(SECURE_PRODUCTION)
    assert load_settings().app_env == "production"


def test_a_redis_cluster_is_named_by_one_of_its_nodes(environment) -> None:
    environment({**SECURE_PRODUCTION, "REDIS_CLUSTER": "true"})
    settings = load_settings()
    assert settings.redis_cluster
    assert settings.redis_url == SECURE_PRODUCTION["REDIS_URL"]


@pytest.mark.parametrize(
    "url",
    [None, "rediss://:Sekr3t@cache.internal:6379/2", "unix:///run/redis.sock"],
)
def test_a_redis_cluster_needs_a_tcp_url_of_database_zero(environment, url) -> None:
    """A cluster has only database 0 and speaks TCP: refused at start-up, not at the first
    request; the message never echoes the URL."""
    environment({"REDIS_CLUSTER": "true"} | ({"REDIS_URL": url} if url else {}))
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "REDIS_URL" in str(error.value)
    assert "REDIS_CLUSTER" in str(error.value)
    assert "Sekr3t" not in str(error.value)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"DATABASE_URL": "sqlite+aiosqlite:///./prod.db"}, "DATABASE_URL"),
        ({"JWT_PRIVATE_KEYS": ""}, "JWT_PRIVATE_KEYS"),
        ({"REDIS_URL": ""}, "REDIS_URL"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
        ({"CORS_ORIGINS": "https://app.example,null"}, "CORS_ORIGINS"),
        ({"CORS_ORIGINS": "NULL"}, "CORS_ORIGINS"),
        ({"TRUSTED_PROXIES": "10.0.0.0/8,0.0.0.0/0"}, "TRUSTED_PROXIES"),
        ({"TRUSTED_PROXIES": "::/0"}, "TRUSTED_PROXIES"),
        ({"BILLING_REDIRECT_ORIGINS": "http://app.example"}, "BILLING_REDIRECT_ORIGINS"),
        ({"STRIPE_SECRET_KEY": "sk_live_x"}, "STRIPE_WEBHOOK_SECRETS"),
        (
            {"STRIPE_SECRET_KEY": "sk_test_x", "STRIPE_WEBHOOK_SECRETS": "whsec_x"},
            "STRIPE_SECRET_KEY",
        ),
        ({"BOOTSTRAP_ADMIN_EMAIL": "admin@example.com"}, "BOOTSTRAP_ADMIN_PASSWORD"),
        ({"EMAIL_BACKEND": "outbox"}, "EMAIL_BACKEND"),
        ({"EMAIL_BACKEND": "smtp", "EMAIL_SMTP_URL": "smtp://relay:25"}, "EMAIL_SMTP_URL"),
        ({"EMAIL_FROM": "Slipway <no-reply@localhost>"}, "EMAIL_FROM"),
        ({"EMAIL_LINK_BASE_URL": "http://app.example.com"}, "EMAIL_LINK_BASE_URL"),
    ],
)
def test_production_refuses_missing_or_insecure_values(environment, override, named) -> None:
    environment({**SECURE_PRODUCTION, **override})
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert named in str(error.value)


def test_errors_never_echo_secret_values(environment) -> None:
    environment(
        {
            **SECURE_PRODUCTION,
            "DATABASE_URL": "sqlite+aiosqlite:///./x.db",
            "STRIPE_SECRET_KEY": "sk_live_supersecret123",
            "METRICS_TOKEN": "tiny-secret",
        }
    )
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "supersecret123" not in message
    assert "tiny-secret" not in message
    assert "BEGIN PRIVATE KEY" not in message


SECURE_STAGING = {**SECURE_PRODUCTION, "APP_ENV": "staging"}


@pytest.mark.parametrize("env", [SECURE_STAGING, SECURE_PRODUCTION])
def test_a_deployment_without_redis_is_refused_naming_the_opt_out(environment, env) -> None:
    environment({**env, "REDIS_URL": ""})
    with pytest.raises(SettingsError) as error:
        load_settings()
    message = str(error.value)
    assert "REDIS_URL is required" in message
    assert "RATE_LIMITS_SHARED=false" in message  # the escape hatch, for one-instance stacks


def test_a_deployment_that_declares_in_process_limits_loads_without_redis(environment) -> None:
    environment({**SECURE_STAGING, "REDIS_URL": "", "RATE_LIMITS_SHARED": "false"})
    settings = load_settings()
    assert (settings.app_env, settings.redis_url) == ("staging", None)


@pytest.mark.parametrize(
    "values",
    [
        # Redis would still limit: the declaration would be false.
        {**SECURE_STAGING, "RATE_LIMITS_SHARED": "false"},
        {"REDIS_URL": "redis://127.0.0.1:6379/0", "RATE_LIMITS_SHARED": "false"},
        # Shared limits asked for explicitly need somewhere to share them, in any environment.
        {"RATE_LIMITS_SHARED": "true"},
    ],
)
def test_rate_limits_shared_must_agree_with_redis_url(environment, values) -> None:
    environment(values)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "RATE_LIMITS_SHARED" in str(error.value)
