"""The container bootstrap: SigV4 exactly as botocore signs, secrets resolved from a real
(moto) Secrets Manager over HTTP, DATABASE_URL built URL-encoded, then the command exec'd."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Iterator

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.server import ThreadedMotoServer

from api.container_bootstrap import signed_headers
from infra_pulumi.components._containers import bootstrap_source, with_bootstrap
from tests.live_server import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "AWS_SESSION_TOKEN": "session-token",
}
PRINT_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def test_signature_matches_botocore() -> None:
    url = "https://secretsmanager.eu-west-1.amazonaws.com/"
    body = b'{"SecretId": "arn:aws:secretsmanager:eu-west-1:1:secret:x"}'
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": "secretsmanager.GetSecretValue",
    }
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    credentials = Credentials(
        CREDENTIALS["AWS_ACCESS_KEY_ID"],
        CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        CREDENTIALS["AWS_SESSION_TOKEN"],
    )
    SigV4Auth(credentials, "secretsmanager", "eu-west-1").add_auth(request)
    # sign at the very instant botocore chose
    now = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.UTC
    )
    ours = signed_headers(url, body, "eu-west-1", CREDENTIALS, now)
    assert ours["authorization"] == request.headers["Authorization"]


@pytest.fixture(scope="module")
def secrets_manager() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.stop()


def run_bootstrap(env: dict[str, str]) -> dict[str, str]:
    command = with_bootstrap([sys.executable, "-c", PRINT_ENV])
    command[0] = sys.executable
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    output: dict[str, str] = json.loads(result.stdout)
    return output


def test_lambda_secrets_are_resolved_and_database_url_built(secrets_manager: str) -> None:
    client = boto3.client(
        "secretsmanager",
        region_name="eu-west-1",
        endpoint_url=secrets_manager,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    stripe = client.create_secret(Name="stripe", SecretString="sk_test_value")["ARN"]
    master = client.create_secret(
        Name="rds-master",
        SecretString=json.dumps({"username": "slipway", "password": "p@ss:w/rd#?%"}),
    )["ARN"]
    env = {
        **CREDENTIALS,
        "AWS_REGION": "eu-west-1",
        "SECRETS_MANAGER_ENDPOINT": secrets_manager,
        "DATABASE_HOST": "db.internal",
        "DATABASE_NAME": "slipway",
        "SECRET_ARNS": json.dumps(
            {
                "STRIPE_SECRET_KEY": stripe,
                "DATABASE_USER": f"{master}:username::",
                "DATABASE_PASSWORD": f"{master}:password::",
            }
        ),
    }
    seen = run_bootstrap(env)
    assert seen["STRIPE_SECRET_KEY"] == "sk_test_value"
    assert seen["DATABASE_URL"] == (
        "postgresql+psycopg://slipway:p%40ss%3Aw%2Frd%23%3F%25@db.internal:5432/slipway?sslmode=require"
    )
    # the parts and the references do not linger in the API's environment
    assert not {"DATABASE_PASSWORD", "DATABASE_USER", "SECRET_ARNS"} & set(seen)


def test_unresolvable_secret_fails_naming_the_variable_not_the_value(secrets_manager: str) -> None:
    env = {
        **CREDENTIALS,
        "AWS_REGION": "eu-west-1",
        "SECRETS_MANAGER_ENDPOINT": secrets_manager,
        "SECRET_ARNS": json.dumps(
            {"JWT_PRIVATE_KEYS": "arn:aws:secretsmanager:eu-west-1:1:secret:missing"}
        ),
    }
    command = with_bootstrap([sys.executable, "-c", PRINT_ENV])
    command[0] = sys.executable
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "cannot resolve secret for JWT_PRIVATE_KEYS" in result.stderr
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in result.stderr


def test_ecs_injected_parts_only_need_composing() -> None:
    env = {
        "DATABASE_USER": "u",
        "DATABASE_PASSWORD": "secret",
        "DATABASE_HOST": "h",
        "DATABASE_NAME": "n",
        "DATABASE_PORT": "6543",
    }
    assert (
        run_bootstrap(env)["DATABASE_URL"]
        == "postgresql+psycopg://u:secret@h:6543/n?sslmode=require"
    )


def test_without_a_user_the_url_names_none_and_a_ca_file_means_verify_full() -> None:
    # The API: its user comes from DATABASE_SECRET_ARN at run time; RDS verified with the bundle.
    env = {
        "DATABASE_HOST": "h",
        "DATABASE_NAME": "n",
        "DATABASE_CA_FILE": "/etc/ssl/certs/rds-global-bundle.pem",
    }
    assert run_bootstrap(env)["DATABASE_URL"] == (
        "postgresql+psycopg://h:5432/n"
        "?sslmode=verify-full&sslrootcert=/etc/ssl/certs/rds-global-bundle.pem"
    )


def test_inline_source_is_compact() -> None:
    source = bootstrap_source()
    assert '"""' not in source
    assert len(source) < 4096
