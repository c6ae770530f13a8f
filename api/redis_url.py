"""REDIS_URL parsed safely: a password may hold any character, and errors never echo it.

`urllib.parse.urlsplit` reads `#` as the start of a fragment and `/` or `?` as the end of
the authority, so `redis://:pa#ss/w@cache:6379/0` would lose the password's tail and then
fail on a "port" that is part of the password, quoting it in the error. Here the user
information runs to the last `@` of the URL, whatever it contains; only the rest is parsed
as host, port, database and query. Percent-encoded user information is decoded (`%25` is a
literal `%`), so URLs that encode their password keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

_SCHEMES = ("redis", "rediss", "unix")
_DEFAULT_PORT = 6379


class RedisUrlError(ValueError):
    """The URL is unusable; the message never contains any part of it."""


@dataclass(frozen=True)
class RedisAddress:
    host: str | None
    port: int
    unix_path: str | None
    username: str | None
    password: str | None
    db: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        """redis://[user:password@]host[:port][/db], rediss://... (TLS), unix://path[?db=N]."""
        scheme, separator, rest = url.partition("://")
        if not separator or scheme not in _SCHEMES:
            raise RedisUrlError("REDIS_URL must start with redis://, rediss:// or unix://")
        userinfo, at, location = rest.rpartition("@")
        if not at:
            location = rest
        username, _, password = userinfo.partition(":")
        try:
            parts = urlsplit(f"{scheme}://{location}")
            query = parse_qs(parts.query)
            db_text = parts.path.lstrip("/") if scheme != "unix" else ""
            db = int(db_text or query.get("db", ["0"])[0])
            port = parts.port or _DEFAULT_PORT
        except ValueError:
            raise RedisUrlError(
                "REDIS_URL has an invalid host, port or database number"
                " (the password may contain any character; nothing else may)"
            ) from None
        host = parts.hostname if scheme != "unix" else None
        if scheme != "unix" and not host:
            raise RedisUrlError("REDIS_URL names no host")
        return cls(
            host=host,
            port=port,
            unix_path=parts.path if scheme == "unix" else None,
            username=unquote(username) if username else None,
            password=unquote(password) if password else None,
            db=db,
            tls=scheme == "rediss",
        )

    def cluster_problem(self) -> str | None:
        """Why this address cannot name a Redis Cluster node (a cluster speaks TCP and has
        only database 0), or None."""
        if self.unix_path is not None:
            return "REDIS_URL must be redis:// or rediss:// with REDIS_CLUSTER=true"
        if self.db != 0:
            return "REDIS_URL must name database 0 with REDIS_CLUSTER=true (a cluster has no other)"
        return None
