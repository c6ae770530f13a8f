"""Lambda cold start (issue 17): importing the API's handler module against a bare FastAPI +
Mangum handler, each in fresh interpreters, side by side.

Both run on what the image installs (Dockerfile: the runtime dependencies and the `lambda` and
`ses` groups, bytecode compiled), synced from uv's cache into a temporary environment: the
development environment also holds Prefect, Pulumi and their friends, which some libraries
import when present. Every import runs in a new `python` process with the dev stack's Lambda
environment (APP_ENV as the stack sets it, dummy but valid settings; nothing is connected at
import). One unmeasured run per module writes the project's .pyc files, then the runs alternate
between the modules and the median CPU time of each is compared. Printed: medians, and the
ratio with its goal (<= 2.0 x the bare handler).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from api.auth.keys import generate_private_key_pem
from benchmarks.goals import Goal
from benchmarks.harness import ROOT

RUNS = int(os.environ.get("BENCH_COLD_RUNS", "15"))
GOAL = 2.0
MODULES = {
    "bare FastAPI + Mangum": "benchmarks.bare_lambda",
    "api.lambda_handler": "api.lambda_handler",
}
# The import alone (interpreter start-up is the same for both and not the app's), in CPU
# time: other work on a shared machine stretches wall time, not the work the import does.
_PROBE = """
import sys, time
started = time.process_time()
__import__(sys.argv[1])
print(time.process_time() - started)
"""


def lambda_environment(directory: Path) -> dict[str, str]:
    """What the dev stack's function sees after the bootstrap resolved its secrets
    (infra_pulumi/components/compute.py), with placeholders that pass the settings' checks."""
    token = "0123456789abcdef" * 4
    return {
        "APP_ENV": "staging",
        "DATABASE_URL": "postgresql://db.invalid:5432/slipway?sslmode=verify-full",
        "DATABASE_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db",
        "DATABASE_POOL_SIZE": "1",
        "DATABASE_MAX_OVERFLOW": "2",
        "AWS_REGION": "eu-west-1",
        "AWS_LAMBDA_FUNCTION_NAME": "slipway-dev-api",
        "CORS_ORIGINS": "https://dev.slipway.example.com",
        "TRUSTED_PROXIES": "10.40.0.0/16",
        "EMAIL_BACKEND": "ses",
        "EMAIL_FROM": "no-reply@dev.slipway.example.com",
        "EMAIL_LINK_BASE_URL": "https://dev.slipway.example.com",
        "EMAIL_SES_CONFIGURATION_SET": "slipway-dev-email",
        "JWT_PRIVATE_KEYS": generate_private_key_pem(),
        "STRIPE_SECRET_KEY": "sk_test_" + token,
        "STRIPE_WEBHOOK_SECRETS": "whsec_" + token,
        "METRICS_TOKEN": token,
        "ORIGIN_VERIFY_SECRET": token,
        # As the dev stack declares them (no cache, no NAT gateway): rates are limited in
        # process, so no Redis client is built (tests/infra/test_dev_stack_environment.py).
        "RATE_LIMITS_SHARED": "false",
        "REQUIRE_VERIFIED_EMAIL": "false",
        "HOME": str(directory),
        "PATH": os.environ.get("PATH", ""),
    }


def runtime_environment(directory: Path) -> Path:
    """The image's Python environment (Dockerfile's `uv sync`), built from uv's cache."""
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(directory),
        "UV_COMPILE_BYTECODE": "1",
        "UV_OFFLINE": "1",
    }
    groups = ["--no-default-groups", "--group", "lambda", "--group", "ses"]
    subprocess.run(
        ["uv", "sync", "--frozen", *groups, "--no-install-project", "--quiet"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return directory / "bin" / "python"


def import_seconds(python: Path, module: str, env: dict[str, str]) -> float:
    result = subprocess.run(
        [str(python), "-c", _PROBE, module],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{result.stderr[-4000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> list[Goal]:
    with tempfile.TemporaryDirectory() as directory:
        python = runtime_environment(Path(directory) / "venv")
        env = lambda_environment(Path(directory))
        for module in MODULES.values():
            import_seconds(python, module, env)  # writes the project's bytecode
        samples: dict[str, list[float]] = {name: [] for name in MODULES}
        for _ in range(RUNS):
            for name, module in MODULES.items():
                samples[name].append(import_seconds(python, module, env))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    bare, api = medians.values()
    print(f"\nLambda cold import: {RUNS} fresh interpreters each, alternating, bytecode compiled")
    print(f"{'handler module (CPU s)':<26} {'median':>9} {'min':>7} {'max':>7}")
    for name, values in samples.items():
        print(f"{name:<26} {medians[name]:>9.3f} {min(values):>7.3f} {max(values):>7.3f}")
    print(f"ratio: {api / bare:.2f} x the bare handler (goal <= {GOAL:.1f} x)")
    print(json.dumps({"bare_s": bare, "api_s": api, "ratio": api / bare}))
    return [Goal("Lambda cold import vs bare FastAPI + Mangum", api / bare, GOAL, at_least=False)]


if __name__ == "__main__":
    main()
