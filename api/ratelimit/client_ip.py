"""The client IP a limit is keyed by.

The socket peer, unless the peer is a trusted proxy (TRUSTED_PROXIES): then X-Forwarded-For
is read from the right, skipping trusted proxies, and the first address that is not one is
the client. Everything left of it was written by the client and can be forged, so a spoofed
header from an untrusted peer, or spoofed entries in front of a real proxy's, change nothing.

Behind CloudFront, the viewer's own address arrives in `CloudFront-Viewer-Address`
("ip:port", IPv6 without brackets). It is believed only when the request also carries the
origin secret CloudFront adds (`X-Origin-Verify`, compared in constant time), whoever the peer
is: the secret, not the network path, proves the request came through our distribution.

IPv6 clients are keyed by their /64: one host usually holds a whole /64 and could otherwise
rotate through addresses to escape its limit.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN_CLIENT = "unknown"
_ORIGIN_VERIFY = b"x-origin-verify"
_VIEWER_ADDRESS = b"cloudfront-viewer-address"
_CACHE_LIMIT = 4096


def _parse(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("["):  # "[2001:db8::1]:443"
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # "203.0.113.7:5678"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return _unmapped(address)


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _viewer(value: bytes) -> IPAddress | None:
    """`CloudFront-Viewer-Address`: "198.51.100.7:5678" or "2001:db8::7:5678"."""
    host, separator, port = value.decode("latin-1").strip().rpartition(":")
    if not separator or not port.isdigit():
        return None
    try:
        return _unmapped(ipaddress.ip_address(host))
    except ValueError:
        return None


def _key(address: IPAddress) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class ClientIpResolver:
    def __init__(
        self, trusted_proxies: Sequence[IPNetwork] = (), origin_verify_secret: str | None = None
    ) -> None:
        self._trusted = tuple(trusted_proxies)
        self._origin_secret = origin_verify_secret.encode() if origin_verify_secret else None
        self._peer_keys: dict[str, str] = {}
        self._peer_trusted: dict[str, bool] = {}

    def _is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self._trusted)

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else None
        if not peer:
            return UNKNOWN_CLIENT
        viewer = self._verified_viewer(scope)
        if viewer is not None:
            return _key(viewer)
        if self._trusted and self._peer_is_trusted(peer):
            forwarded = self._forwarded_client(scope)
            if forwarded is not None:
                return _key(forwarded)
        return self._peer_key(peer)

    def address(self, scope: Scope) -> str | None:
        """The client's own address (not its /64 rate-limit key), for session lists and logs."""
        client = scope.get("client")
        peer = client[0] if client else None
        if not peer:
            return None
        viewer = self._verified_viewer(scope)
        if viewer is not None:
            return str(viewer)
        if self._trusted and self._peer_is_trusted(peer):
            forwarded = self._forwarded_client(scope)
            if forwarded is not None:
                return str(forwarded)
        return str(peer)

    def _verified_viewer(self, scope: Scope) -> IPAddress | None:
        """The viewer CloudFront names, when the request proves it came through CloudFront:
        exactly one origin secret header, matching, and exactly one viewer address."""
        if self._origin_secret is None:
            return None
        secrets = [value for name, value in scope["headers"] if name == _ORIGIN_VERIFY]
        viewers = [value for name, value in scope["headers"] if name == _VIEWER_ADDRESS]
        if len(secrets) != 1 or len(viewers) != 1:
            return None
        if not hmac.compare_digest(secrets[0], self._origin_secret):
            return None
        return _viewer(viewers[0])

    def _peer_key(self, peer: str) -> str:
        key = self._peer_keys.get(peer)
        if key is None:
            address = _parse(peer)
            key = _key(address) if address is not None else peer
            if len(self._peer_keys) >= _CACHE_LIMIT:
                self._peer_keys.clear()
            self._peer_keys[peer] = key
        return key

    def _peer_is_trusted(self, peer: str) -> bool:
        trusted = self._peer_trusted.get(peer)
        if trusted is None:
            address = _parse(peer)
            trusted = address is not None and self._is_trusted(address)
            if len(self._peer_trusted) >= _CACHE_LIMIT:
                self._peer_trusted.clear()
            self._peer_trusted[peer] = trusted
        return trusted

    def _forwarded_client(self, scope: Scope) -> IPAddress | None:
        """The right-most X-Forwarded-For address that is not a trusted proxy.

        None when there is no usable header (the trusted peer itself is then the client).
        An unparsable entry ends the walk: what lies left of it cannot be attributed, so
        the nearest address the trusted chain vouches for is used instead.
        """
        values = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
        if not values:
            return None
        entries = b",".join(values).decode("latin-1").split(",")
        nearest: IPAddress | None = None
        for entry in reversed(entries):
            address = _parse(entry)
            if address is None:
                return nearest
            if not self._is_trusted(address):
                return address
            nearest = address
        return nearest  # Every hop is a trusted proxy: the left-most one is the origin.
