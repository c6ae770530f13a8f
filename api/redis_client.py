"""redis-py clients built from REDIS_URL, for every Redis use but the limiter's hot path.

Built from `RedisAddress` (not `redis.from_url`) so a password may hold any character and no
error ever quotes the URL.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from api.redis_url import RedisAddress


def redis_client(
    url: str, *, timeout_seconds: float = 0.25, caller_bounds_calls: bool = False
) -> Redis:
    """A client with short timeouts: callers treat a slow Redis like an absent one.

    `caller_bounds_calls`: no socket timeout, because the caller wraps each call in
    `asyncio.timeout` instead. On the hot path that is cheaper: redis-py guards every socket
    read and write with `asyncio.wait_for`, which on Python 3.11 starts a task each time.
    """
    address = RedisAddress.parse(url)
    options: dict[str, Any] = {
        "username": address.username,
        "password": address.password,
        "socket_timeout": None if caller_bounds_calls else timeout_seconds,
        "socket_connect_timeout": max(timeout_seconds, 0.5),
        # No retries with back-off (redis-py's default waits seconds): a failed command is
        # answered at once and the caller falls back; it tries Redis again after a cool-down.
        "retry": Retry(NoBackoff(), 0),
    }
    if address.unix_path is not None:
        return Redis(unix_socket_path=address.unix_path, db=address.db, **options)
    return Redis(
        host=address.host or "localhost",
        port=address.port,
        db=address.db,
        ssl=address.tls,
        **options,
    )
