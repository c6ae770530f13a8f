"""The authenticated user, cached in Redis per (user, session), invalidated by version.

Each user has a version key holding a random token; every cached entry of that user records
the token it was read under and is served only while the token is still current. A change
that must apply at the next request (disable, role, password, session revocation, deletion)
commits to PostgreSQL first and then replaces the token, so on every process the next lookup
misses and reads the database again. An entry written by a reader that raced the change
carries the old token and is never served: a hit is never older than the invalidation
before it. Tokens are random (not counters), so an evicted or expired version key can never
make an old entry current again.

The version and the entry of one user share a hash tag, so the lookup is one atomic script
in one slot (Redis Cluster included) and one round trip. Lookups of concurrent requests are
coalesced: those made in one turn of the event loop go to Redis as one script call per hash
slot, in one round trip (api.redis_scripts), so a busy process pays redis-py's cost per
command once for many requests.

Other domains' per-user data that every request of the user may need (billing's subscription,
for entitlements) rides along as a *facet*: a row outer-joined to the user's own read on a
miss (`with_facets`), cached in the same entry. A change to such data marks the user
(`mark_user_changed`); the invalidation follows the commit (`CachingSession`).

Redis is an optimisation, never a dependency: any error or timeout means a miss (the caller
reads PostgreSQL) and Redis is left alone for a cool-down. If an invalidation cannot reach
Redis, entries expire after `ttl_seconds` at the latest, and this process stops reading the
cache for that long.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from api.redis_client import redis_failures
from api.redis_scripts import Script, by_slot, run_script

if TYPE_CHECKING:
    from api.redis_client import AsyncRedis

_PendingLookup = tuple[uuid.UUID, uuid.UUID, "asyncio.Future[tuple[Any, Any]]"]

logger = logging.getLogger("api.cache")

ENTRY_TTL_SECONDS = 60
# How long one cache call may take before it counts as a miss (the client has no socket
# timeout of its own: api.redis_client, caller_bounds_calls).
CALL_TIMEOUT_SECONDS = 0.25
# Start-up may connect, read a cluster's slot map and load the script on every primary.
START_TIMEOUT_SECONDS = 2.0
# Longer than any entry lives, so a version key never expires under a current entry.
VERSION_TTL_SECONDS = 86_400
COOLDOWN_SECONDS = 1.0
# Where each database session finds the cache (`Session.info`), so services invalidate
# without knowing how the API was configured.
SESSION_INFO_KEY = "user_cache"
# Users whose cached entries a session's open transaction changed, and those it committed.
_CHANGED_KEY = "user_cache_changed"
_COMMITTED_KEY = "user_cache_committed"

# Lookups of concurrent requests, coalesced. KEYS: each lookup's version key and entry key, in
# turn. ARGV[1]: the version's lifetime; ARGV[1 + i]: a fresh token for lookup i, used when its
# user has no version yet. Returns, per lookup, {current token, entry or false}.
LOOKUP_SCRIPT = Script("""
local out = {}
for i = 1, #KEYS / 2 do
  local version = redis.call('GET', KEYS[2 * i - 1])
  if not version then
    version = ARGV[i + 1]
    redis.call('SET', KEYS[2 * i - 1], version, 'EX', ARGV[1])
  end
  out[2 * i - 1] = version
  out[2 * i] = redis.call('GET', KEYS[2 * i])
end
return out
""")
# Lookups per script call: bounds how long one call keeps Redis busy.
MAX_BATCH = 128


def _version_key(user_id: uuid.UUID) -> str:
    return f"slipway:user:{{{user_id}}}:version"


def _entry_key(user_id: uuid.UUID, session_id: uuid.UUID) -> str:
    # `e2`: the entry's layout ({"user", "facets"}); a new layout gets a new name, so entries
    # an older release cached are never read as the new one.
    return f"slipway:user:{{{user_id}}}:session:{session_id}:e2"


def _lookup_keys(user_id: uuid.UUID, session_id: uuid.UUID) -> tuple[str, str]:
    return _version_key(user_id), _entry_key(user_id, session_id)


@dataclass(frozen=True)
class Lookup:
    """What the cache knows: the entry if current, and the version a miss must store under."""

    entry: dict[str, Any] | None
    version: str | None


MISS_WITHOUT_CACHE = Lookup(entry=None, version=None)


class CacheReplyError(RuntimeError):
    """Redis answered the lookup script with something it cannot return."""


class UserCache:
    def __init__(
        self,
        client: AsyncRedis,
        *,
        ttl_seconds: int = ENTRY_TTL_SECONDS,
        cooldown_seconds: float = COOLDOWN_SECONDS,
    ) -> None:
        from redis.asyncio import RedisCluster

        self._client = client
        self._cluster = isinstance(client, RedisCluster)
        # What makes a lookup a miss rather than an error.
        self._failures: tuple[type[BaseException], ...] = (*redis_failures(), CacheReplyError)
        self._pending: list[_PendingLookup] = []
        self._flush_scheduled = False
        # Lookups under way, kept referenced until they end.
        self._batches: set[asyncio.Task[None]] = set()
        self.ttl_seconds = ttl_seconds
        self._cooldown_seconds = cooldown_seconds
        self._bypass_until = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._bypass_until

    def _failed(
        self, action: str, error: BaseException, *, bypass_seconds: float | None = None
    ) -> None:
        # The error's repr names the failure (a timeout, a refused connection), never the URL.
        logger.warning("user cache unavailable", extra={"action": action, "error": repr(error)})
        pause = self._cooldown_seconds if bypass_seconds is None else bypass_seconds
        self._bypass_until = max(self._bypass_until, time.monotonic() + pause)

    async def start(self) -> None:
        """Connect and load the lookup script before the first request (on a cluster: on every
        primary). Otherwise the first lookups pay for it within their own time limit, and on a
        busy start one that runs out puts the cache in its cool-down. Not fatal: lookups miss
        until Redis answers."""
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                await self._client.script_load(LOOKUP_SCRIPT.text)
        except self._failures as exc:
            logger.warning("user cache not reachable at start-up", extra={"error": repr(exc)})

    async def get(self, user_id: uuid.UUID, session_id: uuid.UUID) -> Lookup:
        if not self._available():
            return MISS_WITHOUT_CACHE
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        self._pending.append((user_id, session_id, future))
        if not self._flush_scheduled:
            # Sent after the requests already runnable in this turn of the loop joined in.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        try:
            async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
                version, raw = await future
        except self._failures as exc:
            self._failed("lookup", exc)
            return MISS_WITHOUT_CACHE
        version_text = version.decode() if isinstance(version, bytes) else str(version)
        if raw:
            entry = json.loads(raw)
            if entry.get("version") == version_text:
                return Lookup(entry=entry["data"], version=version_text)
        return Lookup(entry=None, version=version_text)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        for start in range(0, len(pending), MAX_BATCH):
            batch = loop.create_task(self._look_up(pending[start : start + MAX_BATCH]))
            self._batches.add(batch)
            batch.add_done_callback(self._batches.discard)

    async def _look_up(self, items: list[_PendingLookup]) -> None:
        groups = by_slot(items, lambda item: _version_key(item[0]), cluster=self._cluster)
        calls = [
            (
                2 * len(group),
                *(key for user, session, _ in group for key in _lookup_keys(user, session)),
                VERSION_TTL_SECONDS,
                *(secrets.token_hex(16) for _ in group),
            )
            for group in groups
        ]
        try:
            replies = await run_script(self._client, LOOKUP_SCRIPT, calls)
        except Exception as exc:  # whatever Redis or the client raised: these are misses
            replies = [exc] * len(groups)
        for group, reply in zip(groups, replies, strict=True):
            for index, (_, _, future) in enumerate(group):
                if future.done():  # the request gave up waiting (timeout) or went away
                    continue
                if isinstance(reply, list) and len(reply) == 2 * len(group):
                    future.set_result((reply[2 * index], reply[2 * index + 1]))
                elif isinstance(reply, BaseException):
                    future.set_exception(reply)
                else:
                    future.set_exception(CacheReplyError(type(reply).__name__))

    async def put(
        self, user_id: uuid.UUID, session_id: uuid.UUID, version: str, data: dict[str, Any]
    ) -> None:
        """Store what a miss read, under the version seen before reading it."""
        if not self._available():
            return
        payload = json.dumps({"version": version, "data": data}, separators=(",", ":"))
        try:
            async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
                await self._client.set(
                    _entry_key(user_id, session_id), payload, ex=self.ttl_seconds
                )
        except self._failures as exc:
            self._failed("store", exc)

    async def invalidate(self, *user_ids: uuid.UUID) -> None:
        """Make every cached entry of these users stale; call after the change is committed."""
        for user_id in user_ids:
            try:
                async with asyncio.timeout(CALL_TIMEOUT_SECONDS):
                    await self._client.set(
                        _version_key(user_id), secrets.token_hex(16), ex=VERSION_TTL_SECONDS
                    )
            except self._failures as exc:
                # Another process may still hold a current entry until it expires; this one
                # at least stops trusting the cache for as long as such an entry may live.
                self._failed("invalidate", exc, bypass_seconds=self.ttl_seconds)

    async def close(self) -> None:
        # Lookups still waiting time out into misses.
        for batch in list(self._batches):
            batch.cancel()
        await self._client.aclose()


@dataclass(frozen=True)
class UserFacet:
    """Per-user data of another domain, cached with the user.

    `source` gives, for the user's id column, the facet's row: a table (or alias) to outer-join
    to the user's own read on a miss, the join's ON clause, and its columns in `fields` order.
    So a facet costs no round trip of its own. The entry keeps the values as JSON (times as
    ISO 8601 text); readers get it back from the authenticated request
    (api.auth.dependencies.facet_of).
    """

    name: str
    fields: tuple[str, ...]
    source: Callable[[Any], tuple[Any, Any, Sequence[Any]]]


def with_facets(
    statement: Select[*tuple[Any, ...]], facets: Sequence[UserFacet], user_id: Any
) -> Select[*tuple[Any, ...]]:
    """`statement` (a read of one user) outer-joined to every facet's row, with its columns."""
    for facet in facets:
        target, onclause, columns = facet.source(user_id)
        statement = statement.outerjoin(target, onclause).add_columns(
            *(
                column.label(f"{facet.name}__{field}")
                for field, column in zip(facet.fields, columns, strict=True)
            )
        )
    return statement


def facet_entries(facets: Sequence[UserFacet], row: Mapping[Any, Any]) -> dict[str, Any]:
    """Each facet's entry, from a row read `with_facets`."""
    return {
        facet.name: {field: _jsonable(row[f"{facet.name}__{field}"]) for field in facet.fields}
        for facet in facets
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.isoformat()
    return value


def user_cache_of(db: AsyncSession | Session) -> UserCache | None:
    """The cache the session's database was configured with (None without Redis)."""
    cache: UserCache | None = db.info.get(SESSION_INFO_KEY)
    return cache


def mark_user_changed(db: AsyncSession | Session, *user_ids: uuid.UUID) -> None:
    """Record that the open transaction changes what the cache holds for these users: once it
    commits, their entries are invalidated (`CachingSession`); a rollback forgets them."""
    db.info.setdefault(_CHANGED_KEY, set()).update(user_ids)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    changed = session.info.pop(_CHANGED_KEY, None)
    if changed:
        session.info.setdefault(_COMMITTED_KEY, set()).update(changed)


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, _: Any) -> None:
    session.info.pop(_CHANGED_KEY, None)


class CachingSession(AsyncSession):
    """Invalidates the users its committed transactions changed: right after `commit()`, and
    at `close()` for transactions committed otherwise (`async with session.begin()`).

    Commit first, then invalidate: a reader between the two re-caches under the old version,
    which the invalidation makes stale; the other order would let it cache the old row.
    """

    async def commit(self) -> None:
        await super().commit()
        await self._invalidate_committed()

    async def close(self) -> None:
        await super().close()
        await self._invalidate_committed()

    async def _invalidate_committed(self) -> None:
        committed = self.info.pop(_COMMITTED_KEY, None)
        cache = user_cache_of(self)
        if committed and cache is not None:
            await cache.invalidate(*committed)


async def commit_user_changes(db: AsyncSession, *user_ids: uuid.UUID) -> None:
    """Commit a change to these users; their cached entries are invalidated right after
    (the database's sessions are `CachingSession`s)."""
    mark_user_changed(db, *user_ids)
    await db.commit()
