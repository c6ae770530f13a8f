"""redis-py asyncio clients built from REDIS_URL: the user cache, the rate limiter and
readiness all speak to Redis through them (hiredis parses the replies).

Built from `RedisAddress` (not `redis.from_url`) so a password may hold any character and no
error ever quotes the URL. With REDIS_CLUSTER the URL names one node of a Redis Cluster: the
client discovers the others, routes each command to the node owning its key's slot, and
follows MOVED/ASK redirections during failovers and resharding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from api.redis_url import RedisAddress, RedisUrlError

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster

    # Either client: both offer the same commands (a cluster routes each by its key's slot).
    AsyncRedis: TypeAlias = Redis | RedisCluster


def redis_failures() -> tuple[type[BaseException], ...]:
    """What a call to Redis raises when Redis is unreachable, slow or refuses: callers treat
    these as Redis being away. A cluster client that cannot read the slot map raises
    RedisClusterException, which is no RedisError."""
    from redis.exceptions import RedisClusterException, RedisError

    return (RedisError, RedisClusterException, OSError, TimeoutError)


def redis_client(
    url: str,
    *,
    cluster: bool = False,
    timeout_seconds: float = 0.25,
    caller_bounds_calls: bool = False,
) -> AsyncRedis:
    """A client with short timeouts: callers treat a slow Redis like an absent one.

    `caller_bounds_calls`: no socket timeout, because the caller wraps each call in
    `asyncio.timeout` instead (connecting keeps its limit). On the hot path that is cheaper:
    redis-py guards every socket write with `asyncio.wait_for`, which on Python 3.11 runs the
    write in a task of its own, so the command goes out one turn of the event loop later and
    its caller resumes one turn later still; a busy loop's turns take milliseconds.
    """
    # redis-py loads here, not at import: a Lambda container without Redis never pays for it.
    from redis.asyncio import Redis, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    address = RedisAddress.parse(url)
    options: dict[str, Any] = {
        "username": address.username,
        "password": address.password,
        "socket_timeout": None if caller_bounds_calls else timeout_seconds,
        "socket_connect_timeout": max(timeout_seconds, 0.5),
        # No retries with back-off (redis-py's default waits seconds): a failed command is
        # answered at once and the caller falls back; it tries Redis again after a cool-down.
        # A cluster client still follows MOVED/ASK (those are redirections, not retries) and
        # refreshes its slot map at the next command after a node failed.
        "retry": Retry(NoBackoff(), 0),
    }
    if cluster:
        problem = address.cluster_problem()
        if problem:
            raise RedisUrlError(problem)
        return RedisCluster(host=address.host, port=address.port, ssl=address.tls, **options)
    if address.unix_path is not None:
        return Redis(unix_socket_path=address.unix_path, db=address.db, **options)
    return Redis(
        host=address.host or "localhost",
        port=address.port,
        db=address.db,
        ssl=address.tls,
        **options,
    )
