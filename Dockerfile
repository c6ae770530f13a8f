# syntax=docker/dockerfile:1.7
# (ADD --checksum needs Dockerfile syntax 1.6 or newer, whatever builder runs the build.)
# One image for both runtimes, chosen by command:
#   ECS Fargate (default): uvicorn serving api.main:app on :8000
#   AWS Lambda:            python -m awslambdaric api.lambda_handler.handler
# Migrations run as a one-off task with the same image: alembic upgrade head

FROM python:3.11-slim-bookworm AS build
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.9
COPY pyproject.toml uv.lock ./
# Runtime dependencies only, plus the Lambda runtime interface client and boto3 for the SES
# email transport (imported only when EMAIL_BACKEND=ses sends): no dev, flows or infra.
RUN uv sync --frozen --no-default-groups --group lambda --group ses --no-install-project
COPY alembic.ini ./
COPY api ./api
# The venv's bytecode is compiled by uv (UV_COMPILE_BYTECODE); the API's own too, since the
# runtime writes none (PYTHONDONTWRITEBYTECODE): every cold start would compile it again.
RUN python -m compileall -q api

FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APP_ENV=production
# AWS's RDS CA bundle: the API verifies RDS's certificate (DATABASE_CA_FILE, verify-full).
# Pinned as in Dockerfile.flows: a changed bundle fails the build until reviewed.
ADD --chmod=644 \
    --checksum=sha256:e5bb2084ccf45087bda1c9bffdea0eb15ee67f0b91646106e466714f9de3c7e3 \
    https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem \
    /etc/ssl/certs/rds-global-bundle.pem
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=root:root /app /app
USER 10001:10001
EXPOSE 8000
# Client addresses come from the socket; X-Forwarded-For is judged by TRUSTED_PROXIES in the app.
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers", "--no-server-header"]
