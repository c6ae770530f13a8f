#!/usr/bin/env bash
# Post-deploy smoke check through the public URL (CloudFront -> ALB or Lambda), run by
# deploy.yml after `pulumi up`; any failure fails the job, so a release that crash-loops or
# cannot serve requests is not reported green even when ECS's circuit breaker rolled it back.
#   1. GET /readyz answers 200 (the database, and Redis when configured, are reachable);
#   2. a signed-in, read-only request: log in as the stack's smoke-test user and
#      GET /v1/users/me with its bearer token (JWT keys, auth, database reads end to end).
# Inputs (environment): API_URL (stack output apiUrl), SMOKE_TEST_EMAIL and
# SMOKE_TEST_PASSWORD (the environment's smoke-test account; docs/deploying.md).
# Optional: READY_ATTEMPTS (default 30) tries of /readyz, READY_DELAY seconds apart (default 10).
set -euo pipefail

: "${API_URL:?}" "${SMOKE_TEST_EMAIL:?}" "${SMOKE_TEST_PASSWORD:?}"
attempts="${READY_ATTEMPTS:-30}"
delay="${READY_DELAY:-10}"
api="${API_URL%/}"
body_file="$(mktemp)"
trap 'rm -f "$body_file"' EXIT

# A new release may still be registering behind the load balancer: /readyz gets some time.
status=""
for ((attempt = 1; attempt <= attempts; attempt++)); do
  status="$(curl --silent --show-error --max-time 10 --output "$body_file" \
    --write-out '%{http_code}' "$api/readyz" || true)"
  if [[ "$status" == 200 ]]; then
    break
  fi
  if ((attempt < attempts)); then
    sleep "$delay"
  fi
done
if [[ "$status" != 200 ]]; then
  echo "::error::$api/readyz answered ${status:-nothing} after $attempts attempts: $(head -c 500 "$body_file")"
  exit 1
fi
echo "readyz: 200"

# Lambda function URLs behind CloudFront's OAC want the body's SHA-256 from the client; the
# header is harmless elsewhere.
login_body="$(jq -cn --arg email "$SMOKE_TEST_EMAIL" --arg password "$SMOKE_TEST_PASSWORD" \
  '{email: $email, password: $password}')"
body_sha256="$(printf '%s' "$login_body" | sha256sum | cut -d' ' -f1)"
status="$(printf '%s' "$login_body" | curl --silent --show-error --max-time 15 \
  --output "$body_file" --write-out '%{http_code}' \
  --header 'Content-Type: application/json' --header "x-amz-content-sha256: $body_sha256" \
  --data-binary @- "$api/v1/auth/login" || true)"
if [[ "$status" != 200 ]]; then
  # The problem document names the failure; it never contains the password.
  echo "::error::login as the smoke-test user answered ${status:-nothing}: $(head -c 500 "$body_file")"
  exit 1
fi
token="$(jq -r '.access_token // empty' "$body_file")"
if [[ -z "$token" ]]; then
  echo "::error::login answered 200 without an access token"
  exit 1
fi

status="$(curl --silent --show-error --max-time 15 --output "$body_file" \
  --write-out '%{http_code}' --header "Authorization: Bearer $token" \
  "$api/v1/users/me" || true)"
email="$(jq -r '.email // empty' "$body_file" 2>/dev/null || true)"
if [[ "$status" != 200 || "${email,,}" != "${SMOKE_TEST_EMAIL,,}" ]]; then
  echo "::error::GET /v1/users/me answered ${status:-nothing} for the smoke-test user: $(head -c 500 "$body_file")"
  exit 1
fi
echo "signed-in read (GET /v1/users/me): 200"
