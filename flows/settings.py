"""The flows' configuration: the only place the flows read environment variables.

The API's settings (api.settings) stay the API's: what only the ops flows need lives here, so
neither side grows options the other never reads.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.reports import DEFAULT_REPORTS_DIR

# OSV's export of every PyPI advisory (PYSEC and GHSA), refreshed by OSV continuously.
OSV_PYPI_EXPORT_URL = "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"


class FlowsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, case_sensitive=False, extra="ignore")

    # Reports: always on local disk, and in this bucket (under reports/<flow>/) when set.
    reports_dir: Path = Field(DEFAULT_REPORTS_DIR, validation_alias="FLOWS_REPORTS_DIR")
    reports_bucket: str | None = Field(None, validation_alias="FLOWS_REPORTS_BUCKET")
    # boto3 reads these itself; the flows only need them to link to a kept report.
    aws_endpoint_url: str | None = Field(None, validation_alias="AWS_ENDPOINT_URL")
    aws_endpoint_url_s3: str | None = Field(None, validation_alias="AWS_ENDPOINT_URL_S3")
    # dependency-scan: where to fetch the advisory database when none is on disk (a mirror of
    # OSV's export, for example), and how old a database may be before the scan refuses it.
    advisory_db_url: str = Field(OSV_PYPI_EXPORT_URL, validation_alias="FLOWS_ADVISORY_DB_URL")
    advisory_db_max_age_days: int = Field(
        7, ge=1, validation_alias="FLOWS_ADVISORY_DB_MAX_AGE_DAYS"
    )
    # tech-debt in a container: the repository to clone (HTTPS) and a read-only token for it.
    tech_debt_repo_url: str | None = Field(None, validation_alias="TECH_DEBT_REPO_URL")
    tech_debt_git_token: SecretStr | None = Field(None, validation_alias="TECH_DEBT_GIT_TOKEN")
    tech_debt_git_token_secret_arn: str | None = Field(
        None, validation_alias="TECH_DEBT_GIT_TOKEN_SECRET_ARN"
    )
    # tech-debt keeps one GitHub tracking issue up to date when both are set (the token needs
    # Issues: write; without GITHUB_TOKEN the tech-debt token above is used).
    github_token: SecretStr | None = Field(None, validation_alias="GITHUB_TOKEN")
    github_repository: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", validation_alias="GITHUB_REPOSITORY"
    )
    github_api_url: str = Field("https://api.github.com", validation_alias="GITHUB_API_URL")
    # The image tag the deploy pipeline registers the deployments under (their version).
    image_tag: str | None = Field(None, validation_alias="FLOWS_IMAGE_TAG")
    # Failed or crashed flow runs are published to this SNS topic (the alerts' Slack/email path),
    # naming the stack.
    alerts_topic_arn: str | None = Field(None, validation_alias="FLOWS_ALERTS_TOPIC_ARN")
    stack: str = Field("local", validation_alias="FLOWS_STACK")


def flows_settings() -> FlowsSettings:
    return FlowsSettings()
