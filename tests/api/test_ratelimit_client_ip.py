"""Which client IP a limit counts against (socket peer, or X-Forwarded-For via trusted
proxies), and which Redis the limiter talks to."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from api.ratelimit.client_ip import ClientIpResolver
from api.redis_url import RedisAddress

TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


def _scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 1234) if peer else None, "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # Untrusted peers: the header is ignored, whatever it says.
        ("203.0.113.9", ("198.51.100.1",), "203.0.113.9"),
        ("203.0.113.9", (), "203.0.113.9"),
        # Trusted proxy: right-most untrusted entry; trusted hops are skipped.
        ("10.0.0.1", ("198.51.100.1",), "198.51.100.1"),
        ("10.0.0.1", ("6.6.6.6, 198.51.100.1",), "198.51.100.1"),
        ("10.0.0.1", ("6.6.6.6, 198.51.100.1, 10.0.0.2",), "198.51.100.1"),
        ("10.0.0.1", ("6.6.6.6", "198.51.100.1, 10.0.0.2"), "198.51.100.1"),  # two headers
        ("10.0.0.1", ("198.51.100.1:4711",), "198.51.100.1"),
        ("10.0.0.1", ("[2001:db8::1]:443",), "2001:db8::/64"),
        # Garbage in the chain: the nearest vouched-for address, never the garbage.
        ("10.0.0.1", ("198.51.100.1, not-an-ip",), "10.0.0.1"),
        ("10.0.0.1", ("198.51.100.1, not-an-ip, 10.0.0.3",), "10.0.0.3"),
        # Only proxies in the chain: the left-most one is where the request came from.
        ("10.0.0.1", ("10.0.0.7, 10.0.0.8",), "10.0.0.7"),
        ("10.0.0.1", (), "10.0.0.1"),
        # IPv6 clients count per /64; IPv4-mapped addresses count as IPv4.
        ("2001:db8:1:2::99", (), "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", (), "203.0.113.9"),
        ("fd00::1", ("2001:db8:aa:bb::5",), "2001:db8:aa:bb::/64"),
        (None, ("198.51.100.1",), "unknown"),
    ],
)
def test_client_ip(peer: str | None, forwarded: tuple[str, ...], client: str) -> None:
    assert ClientIpResolver(TRUSTED)(_scope(peer, *forwarded)) == client


SECRET = "x" * 40


@pytest.mark.parametrize(
    ("viewer", "client"),
    [
        ("198.51.100.7:5678", "198.51.100.7"),
        ("2001:db8::7:443", "2001:db8::/64"),  # IPv6 without brackets, port after the last colon
        ("::ffff:198.51.100.7:443", "198.51.100.7"),
        # Malformed values name nobody: the usual rules apply (the edge, via the trusted ALB).
        ("198.51.100.7", "130.176.0.5"),
        ("[2001:db8::7]:443", "130.176.0.5"),
        ("not-an-ip:443", "130.176.0.5"),
        ("", "130.176.0.5"),
    ],
)
def test_cloudfront_viewer_address_with_the_origin_secret(viewer: str, client: str) -> None:
    scope = _scope("10.0.0.1", "203.0.113.1, 130.176.0.5")
    scope["headers"] += [
        (b"x-origin-verify", SECRET.encode()),
        (b"cloudfront-viewer-address", viewer.encode()),
    ]
    assert ClientIpResolver(TRUSTED, SECRET)(scope) == client


def test_a_repeated_origin_secret_or_viewer_header_is_not_believed() -> None:
    scope = _scope("130.176.0.5")
    scope["headers"] += [
        (b"x-origin-verify", SECRET.encode()),
        (b"cloudfront-viewer-address", b"198.51.100.7:1"),
        (b"cloudfront-viewer-address", b"198.51.100.8:1"),
    ]
    assert ClientIpResolver((), SECRET)(scope) == "130.176.0.5"


def test_without_trusted_proxies_the_header_is_never_read() -> None:
    assert ClientIpResolver()(_scope("10.0.0.1", "198.51.100.1")) == "10.0.0.1"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", RedisAddress("127.0.0.1", 6379, None, None, None, 0, False)),
        ("redis://cache", RedisAddress("cache", 6379, None, None, None, 0, False)),
        (
            "rediss://app:s%40cret@cache.internal:6380/2",
            RedisAddress("cache.internal", 6380, None, "app", "s@cret", 2, True),
        ),
        ("redis://:token@cache/1", RedisAddress("cache", 6379, None, None, "token", 1, False)),
        (
            "unix:///run/redis.sock?db=4",
            RedisAddress(None, 6379, "/run/redis.sock", None, None, 4, False),
        ),
        # Raw passwords with the characters urlsplit would cut at (issue 12, finding 8).
        (
            "rediss://:p#ss/w?rd@cache:6380/3",
            RedisAddress("cache", 6380, None, None, "p#ss/w?rd", 3, True),
        ),
        (
            "redis://app:a@b#c/d@cache.internal/2",
            RedisAddress("cache.internal", 6379, None, "app", "a@b#c/d", 2, False),
        ),
    ],
)
def test_redis_urls(url: str, expected: RedisAddress) -> None:
    assert RedisAddress.parse(url) == expected
