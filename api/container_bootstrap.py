"""Runs in front of the API inside its container, then execs the real command.

The program passes this file's source with `python -c <source> <command...>`, so the API image
needs nothing extra. Standard library only: the image carries no boto3.

1. `SECRET_ARNS` (JSON: env name -> Secrets Manager ARN, optionally `arn:jsonKey::`) is resolved
   into environment variables. Lambda has no native secret injection; ECS injects natively and
   does not set it.
2. `DATABASE_URL` is built from `DATABASE_HOST`/`DATABASE_PORT`/`DATABASE_NAME`, with
   `DATABASE_USER`/`DATABASE_PASSWORD` URL-encoded into it when given (migrations, the worker;
   the API reads its user from DATABASE_SECRET_ARN at run time instead). With
   `DATABASE_CA_FILE` the server certificate is verified against it (verify-full).

The API also imports `get_secret_string` at run time (api/database_credentials.py).
Secret values are never printed; errors name the variable only.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Mapping, MutableMapping

SERVICE = "secretsmanager"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signed_headers(
    url: str,
    body: bytes,
    region: str,
    credentials: Mapping[str, str],
    now: datetime.datetime,
) -> dict[str, str]:
    """AWS Signature Version 4 headers for a Secrets Manager JSON POST to `url`."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "host": urllib.parse.urlsplit(url).netloc,
        "x-amz-date": amz_date,
        "x-amz-target": "secretsmanager.GetSecretValue",
    }
    if credentials.get("AWS_SESSION_TOKEN"):
        headers["x-amz-security-token"] = credentials["AWS_SESSION_TOKEN"]
    names = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            "POST",
            urllib.parse.urlsplit(url).path or "/",
            "",
            *(f"{name}:{headers[name]}" for name in sorted(headers)),
            "",
            names,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{SERVICE}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + credentials["AWS_SECRET_ACCESS_KEY"]).encode()
    for part in (day, region, SERVICE, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials['AWS_ACCESS_KEY_ID']}/{scope}, "
        f"SignedHeaders={names}, Signature={signature}"
    )
    return headers


def get_secret_string(secret_id: str, env: Mapping[str, str]) -> str:
    region = env["AWS_REGION"]
    url = env.get("SECRETS_MANAGER_ENDPOINT") or f"https://{SERVICE}.{region}.amazonaws.com/"
    if not url.startswith(("https://", "http://")):
        raise ValueError("SECRETS_MANAGER_ENDPOINT must be an http(s) URL")
    body = json.dumps({"SecretId": secret_id}).encode()
    headers = signed_headers(url, body, region, env, datetime.datetime.now(datetime.UTC))
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return str(json.loads(response.read())["SecretString"])


def resolve_secrets(env: MutableMapping[str, str]) -> None:
    references: dict[str, str] = json.loads(env.pop("SECRET_ARNS", "") or "{}")
    fetched: dict[str, str] = {}
    for name, reference in sorted(references.items()):
        arn, json_key = reference, ""
        if reference.endswith("::"):
            # `arn:aws:secretsmanager:...:secret:name:jsonKey::` (the ECS syntax)
            arn, json_key = reference[:-2].rsplit(":", 1)
        try:
            if arn not in fetched:
                fetched[arn] = get_secret_string(arn, env)
            value = fetched[arn]
            env[name] = str(json.loads(value)[json_key]) if json_key else value
        except Exception as error:  # re-raised naming only the variable, never the value
            raise RuntimeError(
                f"cannot resolve secret for {name}: {type(error).__name__}"
            ) from None


def compose_database_url(env: MutableMapping[str, str]) -> None:
    if env.get("DATABASE_URL") or not (env.get("DATABASE_HOST") and env.get("DATABASE_NAME")):
        return
    user = urllib.parse.quote(env.pop("DATABASE_USER", ""), safe="")
    password = urllib.parse.quote(env.pop("DATABASE_PASSWORD", ""), safe="")
    auth = f"{user}:{password}@" if user else ""
    host, port, name = env["DATABASE_HOST"], env.get("DATABASE_PORT", "5432"), env["DATABASE_NAME"]
    ca_file = env.get("DATABASE_CA_FILE")
    tls = f"verify-full&sslrootcert={urllib.parse.quote(ca_file)}" if ca_file else "require"
    env["DATABASE_URL"] = f"postgresql+psycopg://{auth}{host}:{port}/{name}?sslmode={tls}"


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -c <bootstrap> <command> [args...]")
    resolve_secrets(os.environ)
    compose_database_url(os.environ)
    os.execvp(argv[0], argv)  # noqa: S606 - the container's own command, from the task definition


if __name__ == "__main__":
    main(sys.argv[1:])
