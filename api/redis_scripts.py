"""Lua scripts over many keys in one round trip, on one Redis node or on a Redis Cluster.

The rate limiter and the user cache both coalesce the work of concurrent requests into one
script call whose keys are the requests' keys: redis-py's cost per command (packing, the
connection pool, the socket write) is then paid once per batch instead of once per request.
A script may only touch keys of one hash slot on a cluster, so a batch is split by slot
(`by_slot`) and the calls go out in one pipeline, which redis-py writes as one command batch
per node, to all nodes at once; MOVED and ASK replies are followed by redis-py.

A node that lost its scripts (a restart, a flush, a promoted replica: scripts are not
replicated) answers NOSCRIPT; those calls are sent again once as EVAL, which loads the script.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from api.redis_client import AsyncRedis

T = TypeVar("T")


@dataclass(frozen=True)
class Script:
    text: str
    sha: str = field(init=False)  # what EVALSHA names it by, worked out once

    def __post_init__(self) -> None:
        sha = hashlib.sha1(self.text.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", sha)


def by_slot(items: Sequence[T], key_of: Callable[[T], str], *, cluster: bool) -> list[list[T]]:
    """The items grouped so that each group's keys share a hash slot (one group off a cluster).

    Items whose keys must stay together (a user's version and entry) carry a hash tag."""
    if not cluster:
        return [list(items)]
    from redis.crc import key_slot  # with the client: api.redis_client loads redis-py lazily

    groups: dict[int, list[T]] = {}
    for item in items:
        groups.setdefault(key_slot(key_of(item).encode()), []).append(item)
    return list(groups.values())


async def run_script(
    client: AsyncRedis, script: Script, calls: Sequence[Sequence[Any]]
) -> list[Any]:
    """Run `script` once per call (`numkeys, *keys, *args`), all in one round trip.

    One reply per call, in order: the script's result, or the error Redis answered that call
    with (an exception instance, not raised). Connection failures and timeouts raise."""
    replies = await _send(client, calls, "EVALSHA", script.sha)
    from redis.exceptions import NoScriptError

    missing = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        again = await _send(client, [calls[index] for index in missing], "EVAL", script.text)
        for index, reply in zip(missing, again, strict=True):
            replies[index] = reply
    return replies


async def _send(
    client: AsyncRedis, calls: Sequence[Sequence[Any]], verb: str, script: str
) -> list[Any]:
    from redis.exceptions import ResponseError

    if len(calls) == 1:
        try:
            return [await client.execute_command(verb, script, *calls[0])]
        except ResponseError as exc:  # an error reply: the caller decides what it means
            return [exc]
    pipeline = client.pipeline(transaction=False)
    for call in calls:
        pipeline.execute_command(verb, script, *call)
    replies: list[Any] = await pipeline.execute(raise_on_error=False)
    return replies
