"""The only reader of environment variables (docs/reference.md#settings).

Outside development, settings refuse to load when a value is missing or insecure, naming the
variable, so a misconfigured deployment fails at start-up instead of at the first request.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from api.email.message import sender_domain
from api.email.smtp_url import SmtpUrlError, parse_smtp_url
from api.redis_url import RedisAddress

AppEnv = Literal["development", "test", "staging", "production"]
EmailBackend = Literal["outbox", "smtp", "ses"]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./.data/dev.db"
MIN_SECRET_TOKEN_LENGTH = 32
MIN_PASSWORD_LENGTH = 12


def _split_csv(value: object) -> object:
    """Comma-separated environment values become lists; blanks are dropped."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def normalise_database_url(url: str) -> str:
    """Map plain PostgreSQL URLs to the async psycopg driver the API uses."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


class Settings(BaseSettings):
    # Each field's docstring is its description: docs/reference.md is generated from them
    # (scripts/generate_reference.py reads them from the source; pydantic's
    # use_attribute_docstrings parsed this module at every start, 70 ms of a Lambda cold start).
    model_config = SettingsConfigDict(
        env_file=None,
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    app_env: AppEnv = "development"
    """`development`, `test`, `staging` or `production`; staging and production refuse missing
    or insecure values."""
    database_url: str = DEFAULT_DATABASE_URL
    """Any SQLAlchemy async URL; `postgresql://` is mapped to psycopg."""
    database_secret_arn: str | None = None
    """Deployed: a Secrets Manager secret (JSON `username`/`password`) read when connections
    open and re-read after a refusal (rotation); DATABASE_URL then names no user."""
    aws_region: str | None = None
    """Region of the Secrets Manager (and SES) clients."""
    secrets_manager_endpoint: str | None = None
    """Another Secrets Manager endpoint (tests and rehearsals: moto)."""
    database_app_user: str | None = None
    """Migrations only: the least-privilege role the API runs as, created if absent and granted
    DML on the application's tables after every upgrade."""
    database_app_password: SecretStr | None = None
    """Migrations only: the password of DATABASE_APP_USER."""
    database_pool_size: int = Field(default=20, ge=1, le=100)
    """PostgreSQL connections each process keeps open between requests (Lambda: 1, as one
    instance serves one request at a time)."""
    database_max_overflow: int = Field(default=0, ge=0, le=100)
    """PostgreSQL connections a process may open beyond DATABASE_POOL_SIZE while requests need
    them, closed when returned; size plus overflow is the most a process holds. A server keeps
    all of its connections (0): under load, overflow connections were closed and opened again
    at every request, each a new PostgreSQL server process."""
    redis_url: str | None = None
    """`redis://` or `rediss://`; unset: the in-process limiter and no user cache."""
    rate_limits_shared: bool | None = None
    """Whether rate limits are shared through REDIS_URL; unset: required in staging and
    production. `false` declares the in-process limiter (each instance counts alone: a dev
    stack without a cache); `true` requires REDIS_URL everywhere."""
    redis_cluster: bool = False
    """`true`: REDIS_URL names one node of a Redis Cluster (ElastiCache cluster mode, Valkey
    Serverless); the other nodes are discovered from it and MOVED/ASK are followed."""

    jwt_private_keys: SecretStr | None = None
    """PEM EC P-256 keys, newest first: the first signs, all verify and appear in the JWKS
    (development: generated once into `.data/`)."""
    jwt_issuer: str = Field(default="slipway", min_length=1)
    """The `iss` of access tokens."""
    jwt_audience: str = Field(default="slipway-api", min_length=1)
    """The `aud` of access tokens."""
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=3600)
    """Lifetime of an access token."""
    refresh_token_ttl_seconds: int = Field(default=1_209_600, ge=300, le=90 * 86_400)
    """Lifetime of a session (refresh-token family)."""

    stripe_secret_key: SecretStr | None = None
    """Unset: payment and billing endpoints answer 503 "payments are not configured"."""
    stripe_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Comma-separated `whsec_...` secrets; any one may match (rotation)."""
    stripe_api_base: str | None = None
    """Another Stripe API address (a local Stripe emulator)."""

    prices_file: Path | None = None
    """The server-side catalog (TOML); unset: the bundled `api/payments/prices.toml`."""
    rate_limits_file: Path | None = None
    """Overrides of the bundled rate-limit policies (TOML), any subset."""
    trusted_proxies: Annotated[list[IPNetwork], NoDecode] = Field(default_factory=list)
    """CIDRs whose `X-Forwarded-For` is believed; production refuses `0.0.0.0/0` and `::/0`."""
    origin_verify_secret: SecretStr | None = None
    """The value CloudFront sends as `X-Origin-Verify`; only requests carrying it may name the
    viewer's address (`CloudFront-Viewer-Address`)."""

    metrics_token: SecretStr | None = None
    """When set, `/metrics` needs `Authorization: Bearer <token>`."""
    bootstrap_admin_email: str | None = None
    """At start-up, create this admin if absent (idempotent)."""
    bootstrap_admin_password: SecretStr | None = None
    """The bootstrap admin's password (the registration policy applies)."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated origins allowed by CORS; production refuses `null`."""
    billing_redirect_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins (`scheme://host[:port]`) Checkout and the billing portal may send users back to."""
    billing_grace_period_days: int = Field(default=7, ge=0, le=60)
    """How long a past_due subscription keeps its entitlements while Stripe retries."""
    prometheus_multiproc_dir: Path | None = None
    """prometheus_client's own variable: set when several worker processes share metrics."""

    email_backend: EmailBackend | None = None
    """`outbox`, `smtp` or `ses`; unset: smtp when EMAIL_SMTP_URL is set, else the outbox."""
    email_smtp_url: SecretStr | None = None
    """`smtp://user:pass@host:port?starttls=true`."""
    email_from: str = Field(default="Slipway <no-reply@localhost>", min_length=3, max_length=320)
    """The From address of every message."""
    email_outbox_dir: Path = Path(".data") / "outbox"
    """Where the outbox backend writes `.eml` files (development)."""
    email_ses_configuration_set: str | None = None
    """The SES configuration set that records bounces and complaints."""
    email_max_attempts: int = Field(default=5, ge=1, le=20)
    """Delivery attempts before a message is counted as failed."""
    email_retry_base_seconds: float = Field(default=2.0, gt=0, le=300)
    """First retry delay; later ones back off exponentially."""
    email_queue_size: int = Field(default=1000, ge=1, le=100_000)
    """Messages waiting for the background sender at most; beyond it, new ones are dropped
    and counted."""
    product_name: str = Field(default="Slipway", min_length=1, max_length=100)
    """The product name in email subjects and bodies."""

    email_link_base_url: str = "http://127.0.0.1:8000"
    """Base of the links in emails: the product's own front end, which posts the token back."""
    require_verified_email: bool | None = None
    """Whether unverified users may log in; unset: required in staging and production only."""
    email_verification_ttl_seconds: int = Field(default=172_800, ge=300, le=30 * 86_400)
    """Lifetime of an email verification link."""
    password_reset_ttl_seconds: int = Field(default=1800, ge=300, le=86_400)
    """Lifetime of a password reset link."""

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        url = normalise_database_url(value.strip())
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+psycopg://")):
            raise ValueError(
                "DATABASE_URL must be a sqlite+aiosqlite:// or postgresql(+psycopg):// URL"
            )
        return url

    @field_validator(
        "redis_url", "stripe_api_base", "bootstrap_admin_email", "email_ses_configuration_set"
    )
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            RedisAddress.parse(value)  # its errors never quote the URL (the password)
        return value

    @field_validator("stripe_api_base")
    @classmethod
    def _stripe_api_base(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("STRIPE_API_BASE must be an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator(
        "stripe_webhook_secrets", "cors_origins", "billing_redirect_origins", mode="before"
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("billing_redirect_origins")
    @classmethod
    def _redirect_origins(cls, value: list[str]) -> list[str]:
        origins = []
        for origin in value:
            parsed = urlsplit(origin)
            if (
                parsed.scheme not in ("http", "https")
                or not parsed.hostname
                or parsed.path not in ("", "/")
                or parsed.query
                or parsed.fragment
                or parsed.username is not None
            ):
                raise ValueError(
                    f"BILLING_REDIRECT_ORIGINS entries must be origins like https://app.example.com"
                    f" (got {origin!r})"
                )
            origins.append(f"{parsed.scheme}://{parsed.netloc.lower()}")
        return origins

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        items = _split_csv(value)
        if isinstance(items, list):
            try:
                return [ipaddress.ip_network(str(item), strict=False) for item in items]
            except ValueError as exc:
                raise ValueError(f"TRUSTED_PROXIES: {exc}") from None
        return items

    @field_validator("origin_verify_secret")
    @classmethod
    def _origin_verify_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if len(value.get_secret_value()) < MIN_SECRET_TOKEN_LENGTH:
            raise ValueError(
                f"ORIGIN_VERIFY_SECRET must have at least {MIN_SECRET_TOKEN_LENGTH} characters"
            )
        return value

    @field_validator("stripe_webhook_secrets")
    @classmethod
    def _webhook_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        for secret in value:
            if not secret.get_secret_value().startswith("whsec_"):
                raise ValueError("STRIPE_WEBHOOK_SECRETS entries must start with whsec_")
        return value

    @field_validator("email_link_base_url")
    @classmethod
    def _link_base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")) or any(c in value for c in "?#"):
            raise ValueError("EMAIL_LINK_BASE_URL must be an http(s) URL without query or fragment")
        return value

    @property
    def verified_email_required(self) -> bool:
        if self.require_verified_email is not None:
            return self.require_verified_email
        return self.is_deployed

    @field_validator("email_smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            parse_smtp_url(value.get_secret_value())
        except SmtpUrlError as exc:
            raise ValueError(str(exc)) from None
        return SecretStr(value.get_secret_value().strip())

    @property
    def email_transport(self) -> EmailBackend:
        if self.email_backend is not None:
            return self.email_backend
        return "smtp" if self.email_smtp_url is not None else "outbox"

    @property
    def rate_limits_must_be_shared(self) -> bool:
        if self.rate_limits_shared is not None:
            return self.rate_limits_shared
        return self.is_deployed

    @property
    def is_deployed(self) -> bool:
        return self.app_env in ("staging", "production")

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @model_validator(mode="after")
    def _refuse_insecure_deployments(self) -> Settings:
        problems = [
            *self._bootstrap_problems(),
            *self._email_problems(),
            *self._database_problems(),
            *self._rate_limit_problems(),
            *self._redis_problems(),
        ]
        if self.is_deployed:
            problems.extend(self._deployment_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _redis_problems(self) -> list[str]:
        if not self.redis_cluster:
            return []
        if self.redis_url is None:
            return ["REDIS_CLUSTER=true needs REDIS_URL (one node of the cluster)"]
        problem = RedisAddress.parse(self.redis_url).cluster_problem()
        return [problem] if problem else []

    def _database_problems(self) -> list[str]:
        problems = []
        if self.database_secret_arn and not self.aws_region:
            problems.append("AWS_REGION is required with DATABASE_SECRET_ARN")
        if self.database_secret_arn and self.uses_sqlite:
            problems.append("DATABASE_SECRET_ARN needs a PostgreSQL DATABASE_URL")
        if (self.database_app_user is None) != (self.database_app_password is None):
            problems.append("DATABASE_APP_USER and DATABASE_APP_PASSWORD must be set together")
        return problems

    def _rate_limit_problems(self) -> list[str]:
        if self.rate_limits_must_be_shared and self.redis_url is None:
            if self.rate_limits_shared:
                return ["REDIS_URL is required with RATE_LIMITS_SHARED=true"]
            # Limiting in process, N instances grant N times every quota: a deployment that
            # runs one instance on purpose (a dev stack) says so rather than pass for staging.
            return [
                f"REDIS_URL is required in {self.app_env} (rate limits must be shared), or set "
                "RATE_LIMITS_SHARED=false to run the in-process limiter knowingly"
            ]
        if self.rate_limits_shared is False and self.redis_url is not None:
            return ["RATE_LIMITS_SHARED=false contradicts REDIS_URL (Redis would share limits)"]
        return []

    def _bootstrap_problems(self) -> list[str]:
        email, password = self.bootstrap_admin_email, self.bootstrap_admin_password
        if (email is None) != (password is None):
            return ["BOOTSTRAP_ADMIN_EMAIL and BOOTSTRAP_ADMIN_PASSWORD must be set together"]
        if password is not None and len(password.get_secret_value()) < MIN_PASSWORD_LENGTH:
            return [f"BOOTSTRAP_ADMIN_PASSWORD must have at least {MIN_PASSWORD_LENGTH} characters"]
        return []

    def _email_problems(self) -> list[str]:
        if self.email_transport == "smtp" and self.email_smtp_url is None:
            return ["EMAIL_SMTP_URL is required when EMAIL_BACKEND is smtp"]
        return []

    def _deployed_email_problems(self) -> list[str]:
        env = self.app_env
        problems: list[str] = []
        if self.email_transport == "outbox":
            problems.append(
                f"EMAIL_BACKEND must be smtp or ses in {env} (the outbox is a local directory)"
            )
        smtp_url = self.email_smtp_url
        clear_smtp = (
            self.email_transport == "smtp"
            and smtp_url is not None
            and not parse_smtp_url(smtp_url.get_secret_value()).requires_tls
        )
        if clear_smtp:
            problems.append(f"EMAIL_SMTP_URL must use smtps:// or starttls=true in {env}")
        if sender_domain(self.email_from) == "localhost":
            problems.append(f"EMAIL_FROM must be an address of your sending domain in {env}")
        if not self.email_link_base_url.startswith("https://"):
            problems.append(f"EMAIL_LINK_BASE_URL must be an https:// URL in {env}")
        return problems

    def _deployment_problems(self) -> list[str]:
        env = self.app_env
        problems: list[str] = [*self._deployed_email_problems()]
        if self.uses_sqlite:
            problems.append(f"DATABASE_URL must point at PostgreSQL in {env}")
        if not self.jwt_private_keys or not self.jwt_private_keys.get_secret_value().strip():
            problems.append(f"JWT_PRIVATE_KEYS is required in {env} (no generated dev keys)")
        token = self.metrics_token.get_secret_value() if self.metrics_token else ""
        if len(token) < MIN_SECRET_TOKEN_LENGTH:
            minimum = MIN_SECRET_TOKEN_LENGTH
            problems.append(f"METRICS_TOKEN must be set to at least {minimum} characters in {env}")
        if "*" in self.cors_origins:
            problems.append(f"CORS_ORIGINS must not contain '*' in {env}")
        if any(origin.startswith("http://") for origin in self.cors_origins):
            problems.append(f"CORS_ORIGINS must use https:// origins in {env}")
        if any(origin.strip().lower() == "null" for origin in self.cors_origins):
            # Sandboxed iframes and file:// pages all send Origin: null: anyone can be "null".
            problems.append(f"CORS_ORIGINS must not contain 'null' in {env}")
        if any(network.prefixlen == 0 for network in self.trusted_proxies):
            # Trusting every peer lets any client choose its address by X-Forwarded-For.
            problems.append(f"TRUSTED_PROXIES must not contain 0.0.0.0/0 or ::/0 in {env}")
        if any(origin.startswith("http://") for origin in self.billing_redirect_origins):
            problems.append(f"BILLING_REDIRECT_ORIGINS must use https:// origins in {env}")
        if self.stripe_secret_key is not None:
            key = self.stripe_secret_key.get_secret_value()
            if not self.stripe_webhook_secrets:
                problems.append("STRIPE_WEBHOOK_SECRETS is required when STRIPE_SECRET_KEY is set")
            if env == "production" and key.startswith("sk_test_"):
                problems.append("STRIPE_SECRET_KEY must be a live key in production")
            if self.stripe_api_base is not None and env == "production":
                problems.append("STRIPE_API_BASE must not be overridden in production")
        return problems


class SettingsError(RuntimeError):
    """Configuration is invalid; the message names the variables and never echoes values."""


def load_settings() -> Settings:
    """Settings from the process environment, with errors that cannot leak secret values.

    pydantic's default message repeats every input (including secrets) after the error,
    so only the location and message of each error are kept.
    """
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            location = ".".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{location}: {message}" if location else message)
        raise SettingsError("invalid configuration: " + "; ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the process environment, read once."""
    return load_settings()
