"""Where tech-debt finds its history: the working tree it was pointed at, or, where there is
none (the flows image has the code but no `.git`), a shallow clone of TECH_DEBT_REPO_URL made
for the run with a read-only token.

The token comes from TECH_DEBT_GIT_TOKEN or from the Secrets Manager secret that
TECH_DEBT_GIT_TOKEN_SECRET_ARN names (the stack creates it empty; an operator puts the token).
It reaches git as an HTTP header through git's environment-only configuration, so it is never
in a command line, a URL, the clone's config or a message.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flows.dependency_scan.database_fetch import display_url
from flows.settings import flows_settings
from flows.tech_debt.analysis import GIT_TIMEOUT_SECONDS, RepositoryError

NEEDS = (
    "tech-debt needs the repository's git history: run it in a clone (--repo PATH), or set "
    "TECH_DEBT_REPO_URL (https) and, for a private repository, a read-only token in "
    "TECH_DEBT_GIT_TOKEN or in the Secrets Manager secret named by "
    "TECH_DEBT_GIT_TOKEN_SECRET_ARN; git must be installed"
)


@dataclass(frozen=True, slots=True)
class WorkingTree:
    path: Path
    label: str  # what the report calls the repository (its trend is matched on it)


def is_work_tree(path: Path) -> bool:
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            ["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except FileNotFoundError as exc:
        raise RepositoryError(f"git is not installed. {NEEDS}") from exc
    return completed.returncode == 0 and completed.stdout.strip() == "true"


def git_token() -> str | None:
    settings = flows_settings()
    if settings.tech_debt_git_token is not None:
        return settings.tech_debt_git_token.get_secret_value() or None
    if not settings.tech_debt_git_token_secret_arn:
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    from flows.s3 import boto_client

    secret_id = settings.tech_debt_git_token_secret_arn
    try:
        value = boto_client("secretsmanager").get_secret_value(SecretId=secret_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "unknown")
        if code == "ResourceNotFoundException":
            raise RepositoryError(
                f"the secret {secret_id} holds no token yet: put a read-only token for "
                "TECH_DEBT_REPO_URL there (aws secretsmanager put-secret-value --secret-id "
                f"{secret_id} --secret-string <token>)"
            ) from exc
        raise RepositoryError(f"cannot read the git token secret {secret_id}: {code}") from exc
    except BotoCoreError as exc:
        raise RepositoryError(f"cannot read the git token secret: {type(exc).__name__}") from exc
    return str(value.get("SecretString") or "") or None


def _git_environment(token: str | None) -> dict[str, str]:
    environment = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        environment |= {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        }
    return environment


def shallow_clone(url: str, destination: Path, since_days: int, token: str | None) -> None:
    """History of the last `since_days` days only (all churn needs), default branch only."""
    since = (datetime.now(UTC) - timedelta(days=since_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    base = ["git", "clone", "--quiet", "--no-tags", "--single-branch"]
    attempts = [[f"--shallow-since={since}"], ["--depth=1"]]  # the second: nothing changed lately
    error = ""
    for depth in attempts:
        try:
            completed = subprocess.run(  # noqa: S603 - fixed argument list, no shell
                [*base, *depth, "--", url, str(destination)],
                capture_output=True,
                text=True,
                check=False,
                timeout=GIT_TIMEOUT_SECONDS,
                env=_git_environment(token),
            )
        except FileNotFoundError as exc:
            raise RepositoryError(f"git is not installed. {NEEDS}") from exc
        except subprocess.TimeoutExpired as exc:
            raise RepositoryError(
                f"cloning {display_url(url)} took over {GIT_TIMEOUT_SECONDS} s"
            ) from exc
        if completed.returncode == 0:
            return
        error = completed.stderr.strip()
        if token:
            error = error.replace(token, "***")
        if "no commits selected" not in error:
            break
    raise RepositoryError(f"cannot clone {display_url(url)}: {error[-1000:]}")


@contextmanager
def working_tree(repo: Path, since_days: int) -> Iterator[WorkingTree]:
    """`repo` when it is a git working tree, else a clone of TECH_DEBT_REPO_URL for the run."""
    if repo.is_dir() and is_work_tree(repo):
        yield WorkingTree(repo.resolve(), str(repo.resolve()))
        return
    url = flows_settings().tech_debt_repo_url
    if not url:
        raise RepositoryError(f"{repo} is not a git working tree. {NEEDS}")
    with tempfile.TemporaryDirectory(prefix="slipway-tech-debt-") as directory:
        clone = Path(directory) / "repository"
        shallow_clone(url, clone, since_days, git_token())
        yield WorkingTree(clone, display_url(url))
