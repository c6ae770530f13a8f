"""Database credentials read from a Secrets Manager secret when connections are opened, and
read again when PostgreSQL refuses them, so a rotated password is picked up without a restart.

The secret is the JSON document RDS and Secrets Manager's rotation functions keep
(`{"username": ..., "password": ..., ...}`). Reads are rare: the first connection, then only
after a connection attempt fails. Concurrent failures share one re-read, and once a re-read
finds the refused password still in the secret, it is not read again for `MIN_REREAD_SECONDS`
(a database outage must not turn into a stream of Secrets Manager calls).

AWS credentials come from the runtime's standard variables, as every AWS SDK reads them: the
Lambda environment (`AWS_ACCESS_KEY_ID`, ...) or the ECS task role's endpoint
(`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from api.container_bootstrap import get_secret_string

ECS_CREDENTIALS_HOST = "http://169.254.170.2"
MIN_REREAD_SECONDS = 2.0


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def aws_credentials(env: Mapping[str, str]) -> dict[str, str]:
    """Signing credentials: the environment's, else the ECS task role's (container endpoint)."""
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
        return {name: env[name] for name in names if env.get(name)}
    relative = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    url = (
        ECS_CREDENTIALS_HOST + relative
        if relative
        else env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    )
    if not url or not url.startswith(("http://", "https://")):
        raise RuntimeError("no AWS credentials: neither AWS_ACCESS_KEY_ID nor a container role")
    headers = {}
    if env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"):
        headers["Authorization"] = env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - checked scheme
    with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
        document = json.loads(response.read())
    return {
        "AWS_ACCESS_KEY_ID": document["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": document["SecretAccessKey"],
        "AWS_SESSION_TOKEN": document.get("Token", ""),
    }


class SecretCredentials:
    """The current credentials of one secret; `refreshed` after PostgreSQL refused some."""

    def __init__(
        self,
        secret_arn: str,
        region: str,
        endpoint: str | None = None,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.secret_arn = secret_arn
        self._region = region
        self._endpoint = endpoint
        self._environ = environ
        self._clock = clock
        self._current: Credentials | None = None
        # When a re-read last found the refused credentials still in the secret.
        self._stale_at = float("-inf")
        self._lock = asyncio.Lock()
        self.reads = 0

    async def current(self) -> Credentials:
        if self._current is None:
            async with self._lock:
                if self._current is None:
                    await self._read()
        assert self._current is not None
        return self._current

    async def refreshed(self, refused: Credentials) -> Credentials | None:
        """Credentials other than `refused`, re-reading the secret if needed; None when the
        secret still holds the refused ones (not rotated, or rotated in the database only)."""
        async with self._lock:
            if self._current is not None and self._current != refused:
                return self._current  # another connection already re-read it
            if self._clock() - self._stale_at < MIN_REREAD_SECONDS:
                return None
            await self._read()
            if self._current == refused:
                self._stale_at = self._clock()
                return None
            return self._current

    async def _read(self) -> None:
        text = await asyncio.to_thread(self._get_secret_string)
        document = json.loads(text)
        self._current = Credentials(str(document["username"]), str(document["password"]))
        self.reads += 1

    def _get_secret_string(self) -> str:
        env = {**aws_credentials(self._environ), "AWS_REGION": self._region}
        if self._endpoint:
            env["SECRETS_MANAGER_ENDPOINT"] = self._endpoint
        return get_secret_string(self.secret_arn, env)
