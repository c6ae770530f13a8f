"""GCRA (generic cell rate algorithm) decisions and the in-process backend.

One number per key, the theoretical arrival time (TAT, integer milliseconds): a request is
admitted when pushing the TAT one emission interval further keeps it within `quota`
intervals of now. That is a sliding window without a fixed-window boundary (never twice the
quota across a boundary), needs no per-request history and expires on its own once the TAT
is in the past. The Redis Lua script (redis_backend.py) is the same arithmetic, line for line.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.ratelimit.policies import Policy

# Beyond this many keys the in-process store drops expired keys, then the oldest ones.
DEFAULT_MAX_KEYS = 100_000


def _ceil_seconds(milliseconds: int) -> int:
    return -(-milliseconds // 1000)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    # Seconds until the whole quota is available again (the `t` of the RateLimit header).
    reset_seconds: int
    # For refusals: whole seconds after which a retry is admitted (rounded up, never early).
    retry_after_seconds: int

    @classmethod
    def from_step(cls, policy: Policy, allowed: bool, ahead_ms: int) -> Decision:
        """Decision from `ahead_ms`, how far the key's TAT runs ahead of now after the step."""
        if allowed:
            remaining = (policy.burst_ms - ahead_ms) // policy.interval_ms
            return cls(True, max(remaining, 0), _ceil_seconds(ahead_ms), 0)
        # Admitted again once the TAT has come back within the burst allowance.
        retry_ms = ahead_ms + policy.interval_ms - policy.burst_ms
        return cls(False, 0, _ceil_seconds(ahead_ms), max(1, _ceil_seconds(retry_ms)))

    def header(self, policy: Policy) -> bytes:
        return f'"{policy.name}";r={self.remaining};t={self.reset_seconds}'.encode("ascii")


def gcra_step(stored_tat: int | None, now_ms: int, policy: Policy) -> tuple[bool, int, int]:
    """(allowed, TAT to store, ms the TAT runs ahead of now) for one request."""
    tat = now_ms if stored_tat is None or stored_tat < now_ms else stored_tat
    new_tat = tat + policy.interval_ms
    if new_tat - now_ms > policy.burst_ms:
        return False, tat, tat - now_ms
    return True, new_tat, new_tat - now_ms


class InProcessBackend:
    """GCRA state in a dict: the default without Redis and the fallback when Redis fails.

    Single event loop, synchronous arithmetic: no await between read and write, so no races.
    """

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self._tats: dict[str, int] = {}
        self._max_keys = max_keys

    def decide(self, key: str, policy: Policy, now_ms: int) -> Decision:
        allowed, tat, ahead_ms = gcra_step(self._tats.get(key), now_ms, policy)
        if allowed:
            if key not in self._tats and len(self._tats) >= self._max_keys:
                self._make_room(now_ms)
            self._tats[key] = tat
        return Decision.from_step(policy, allowed, ahead_ms)

    def _make_room(self, now_ms: int) -> None:
        # A TAT in the past means the key is back at its full quota: forgetting it changes
        # nothing. Only if that is not enough are the oldest keys dropped (they fail open).
        self._tats = {key: tat for key, tat in self._tats.items() if tat > now_ms}
        overflow = len(self._tats) - self._max_keys // 2
        if overflow > 0:
            for key in list(self._tats)[:overflow]:
                del self._tats[key]

    def __len__(self) -> int:
        return len(self._tats)
