"""The Lambda entry point stays light and serves the same app through Mangum."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import gc, json, sys
import api.lambda_handler as entry
collecting_after_import = gc.isenabled()

def event(path):
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": "lambda.local", "x-request-id": "lambda-1"},
        "requestContext": {"http": {"method": "GET", "path": path, "sourceIp": "203.0.113.9",
                                    "protocol": "HTTP/1.1", "userAgent": "test"},
                           "domainName": "lambda.local", "accountId": "1", "apiId": "a",
                           "requestId": "r", "stage": "$default", "time": "", "timeEpoch": 0},
        "isBase64Encoded": False,
    }

paths = ("/healthz", "/readyz", "/readyz", "/v1/prices")
responses = [entry.handler(event(p), None) for p in paths]
app = entry.handler.app
# Never in the image: the ops layer and the infrastructure.
forbidden = {"prefect", "pulumi", "pulumi_aws"}
# In the image, loaded by the first request that uses them (a Stripe call, a password hash,
# an SES message), never by the cold start: boto3 with botocore, stripe-python with requests.
on_first_use = {"boto3", "botocore", "stripe", "requests", "argon2", "pwdlib", "aiosmtplib"}
# Without REDIS_URL (a dev stack's function limits rates in process): never loaded at all.
unconfigured = {"redis", "hiredis"}
heavy = sorted(
    m for m in sys.modules if m.split(".")[0] in forbidden | on_first_use | unconfigured
)
print(json.dumps({
    "statuses": [r["statusCode"] for r in responses],
    "bodies": [r["body"] for r in responses],
    "request_id": responses[0]["headers"].get("x-request-id"),
    "engine_reused": app.state.database._engine is not None,
    "frozen": gc.get_freeze_count(),
    "collecting": collecting_after_import,
    "heavy": heavy,
}))
"""


def test_lambda_handler_is_light_and_serves_requests(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'lambda.db'}",
        # As deployed: the SES transport loads boto3 for its first message, not at start-up;
        # payments are configured, and stripe-python loads with the first Stripe call.
        "EMAIL_BACKEND": "ses",
        "STRIPE_SECRET_KEY": "sk_test_lambda_cold_start",
        "STRIPE_WEBHOOK_SECRETS": "whsec_lambda_cold_start",
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"the Lambda image would load {report['heavy']}"
    assert report["statuses"] == [200, 200, 200, 200]
    assert json.loads(report["bodies"][0]) == {"status": "ok"}
    assert report["request_id"] == "lambda-1"
    # Mangum runs the lifespan per invocation: the pool must survive between invocations.
    assert report["engine_reused"] is True
    # Start-up's objects are out of the collector's way (no full-collection pauses walk them).
    assert report["frozen"] > 10_000
    # The import runs with the collector off (a sixth of the cold start); it must come back.
    assert report["collecting"] is True
