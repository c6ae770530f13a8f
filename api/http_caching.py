"""HTTP caching for read-mostly public responses: Cache-Control, a strong ETag, and 304.

`/v1/prices` and `/.well-known/jwks.json` only change with a deploy (a new catalog, a rotated
key), so browsers, verifiers and CloudFront may keep them for a few minutes, and a client that
revalidates with `If-None-Match` gets an empty 304 instead of the body. The ETag is the SHA-256
of the exact bytes served, so it changes whenever the representation does, on every instance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response

# Long enough to absorb bursts and let CloudFront answer, short enough that a deploy's new
# catalog or key is everywhere within minutes (JWKS: keys are published before they sign).
PUBLIC_MAX_AGE_SECONDS = 300

NOT_MODIFIED_RESPONSE: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not Modified: the representation still matches `If-None-Match`."}
}


@dataclass(frozen=True)
class CachedRepresentation:
    """A JSON body rendered once, with its validator and caching headers."""

    body: bytes
    max_age: int = PUBLIC_MAX_AGE_SECONDS
    etag: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag", f'"{hashlib.sha256(self.body).hexdigest()[:32]}"')

    def response(self, request: Request) -> Response:
        headers = {"ETag": self.etag, "Cache-Control": f"public, max-age={self.max_age}"}
        if self._matches(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type="application/json", headers=headers)

    def _matches(self, if_none_match: str | None) -> bool:
        """RFC 9110 §13.1.2: weak comparison, a list of tags, or `*`."""
        if not if_none_match:
            return False
        tags = [tag.strip() for tag in if_none_match.split(",")]
        return "*" in tags or any(tag.removeprefix("W/") == self.etag for tag in tags)
