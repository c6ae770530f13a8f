"""Rate-limit policies: the bundled defaults overlaid with RATE_LIMITS_FILE (docs/rate-limits.md).

The file is TOML with `[policies.<name>]` tables (`quota`, `window_seconds`, `key`, `routes`,
and optionally `companions`: policies that limit the same routes as well, each by its own
key, such as a per-IP cap beside the per-account login limit) and an optional top-level
`exempt` list. It may override any subset of policies and fields;
whatever it leaves out keeps its default, so raising one quota takes two lines. A policy
that is not among the defaults must define all four fields. Mistakes are refused at start-up
with the file and the offending field named, never discovered on a live request.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DEFAULT_POLICY_FILE = Path(__file__).with_name("default_policies.toml")

AUTHENTICATED = "authenticated"
ANONYMOUS = "anonymous"
FALLBACK_POLICIES = (AUTHENTICATED, ANONYMOUS)

_REQUIRED_POLICY_FIELDS = frozenset({"quota", "window_seconds", "key", "routes"})
_POLICY_FIELDS = _REQUIRED_POLICY_FIELDS | {"companions"}
_TOP_LEVEL_FIELDS = frozenset({"policies", "exempt"})
# Names appear inside a Structured Fields string in response headers: keep them plain.
_POLICY_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BODY_FIELD = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_QUOTA = 1_000_000_000
MAX_WINDOW_SECONDS = 7 * 86_400

KeyKind = Literal["ip", "user", "ip+body", "body"]


class PolicyFileError(ValueError):
    """The policy file is unreadable or invalid; the message names the file and the field."""


@dataclass(frozen=True)
class KeySpec:
    """What a policy counts by: the client IP, the verified user, or IP plus a body field."""

    kind: KeyKind
    body_fields: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> KeySpec:
        if text in ("ip", "user"):
            return cls(kind=text)  # type: ignore[arg-type]
        for kind in ("ip+body", "body"):
            if text.startswith(f"{kind}:"):
                fields = tuple(part.strip() for part in text.removeprefix(f"{kind}:").split("|"))
                if fields and all(_BODY_FIELD.match(name) for name in fields):
                    return cls(kind=kind, body_fields=fields)
        raise ValueError(
            'must be "ip", "user", "ip+body:<field>[|<field>...]" or "body:<field>[|<field>...]"'
        )

    def __str__(self) -> str:
        if self.kind in ("ip+body", "body"):
            return f"{self.kind}:" + "|".join(self.body_fields)
        return self.kind


@dataclass(frozen=True)
class RoutePattern:
    """`METHOD /template`, `/template` (any method) or `/prefix/*` (every route below it)."""

    text: str
    method: str | None
    path: str
    is_prefix: bool

    @classmethod
    def parse(cls, text: str) -> RoutePattern:
        method_text, _, path = text.strip().rpartition(" ")
        method = method_text.strip().upper() or None
        if method is not None and method not in _METHODS:
            raise ValueError(f"route {text!r}: unknown method {method!r}")
        if not path.startswith("/"):
            raise ValueError(f"route {text!r}: the path must start with /")
        is_prefix = path.endswith("*")
        if is_prefix:
            path = path.removesuffix("*")
            if not path.endswith("/"):
                raise ValueError(f"route {text!r}: a wildcard must follow a slash (/prefix/*)")
        return cls(text=text.strip(), method=method, path=path, is_prefix=is_prefix)

    @property
    def identity(self) -> tuple[str | None, str, bool]:
        return (self.method, self.path, self.is_prefix)

    def specificity(self) -> tuple[int, int, int]:
        """Exact templates beat prefixes, a named method beats any method, longer beats shorter."""
        return (0 if self.is_prefix else 1, 1 if self.method else 0, len(self.path))

    def matches(self, method: str, template: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.is_prefix:
            return template.startswith(self.path) or template == self.path.rstrip("/")
        return template == self.path


@dataclass(frozen=True)
class Policy:
    name: str
    quota: int
    window_seconds: int
    key: KeySpec
    routes: tuple[RoutePattern, ...]
    # Names of the policies that also limit these routes (checked to exist at load time).
    companions: tuple[str, ...] = ()
    # GCRA emission interval: one request per interval on average, `quota` at once at most.
    # Rounded up so that integer milliseconds never admit more than the quota per window.
    interval_ms: int = field(init=False)
    # How far ahead of now the theoretical arrival time may run: quota times the interval.
    burst_ms: int = field(init=False)
    policy_header: bytes = field(init=False)

    def __post_init__(self) -> None:
        interval_ms = math.ceil(self.window_seconds * 1000 / self.quota)
        object.__setattr__(self, "interval_ms", interval_ms)
        object.__setattr__(self, "burst_ms", interval_ms * self.quota)
        header = f'"{self.name}";q={self.quota};w={self.window_seconds}'
        object.__setattr__(self, "policy_header", header.encode("ascii"))


@dataclass(frozen=True)
class PolicySet:
    policies: Mapping[str, Policy]
    exempt: tuple[RoutePattern, ...]

    def companions_of(self, policy: Policy | None) -> tuple[Policy, ...]:
        if policy is None:
            return ()
        return tuple(self.policies[name] for name in policy.companions)

    @property
    def authenticated(self) -> Policy:
        return self.policies[AUTHENTICATED]

    @property
    def anonymous(self) -> Policy:
        return self.policies[ANONYMOUS]

    def explicit_policy_for(self, method: str, template: str) -> tuple[bool, Policy | None]:
        """(found, policy) for the most specific matching entry; policy None means exempt."""
        best: tuple[tuple[int, int, int], Policy | None] | None = None
        for pattern in self.exempt:
            if pattern.matches(method, template) and (
                best is None or pattern.specificity() > best[0]
            ):
                best = (pattern.specificity(), None)
        for policy in self.policies.values():
            for pattern in policy.routes:
                if pattern.matches(method, template) and (
                    best is None or pattern.specificity() > best[0]
                ):
                    best = (pattern.specificity(), policy)
        if best is None:
            return False, None
        return True, best[1]

    def policy_for(self, method: str, template: str, *, requires_bearer: bool) -> Policy | None:
        """The policy limiting a route (None when exempt), with the documented fallbacks
        (docs/rate-limits.md)."""
        found, policy = self.explicit_policy_for(method, template)
        if found:
            return policy
        return self.authenticated if requires_bearer else self.anonymous


def load_policy_set(path: Path | None = None) -> PolicySet:
    """The bundled defaults, overlaid with `path` when given."""
    defaults = _read_toml(DEFAULT_POLICY_FILE)
    merged_policies: dict[str, dict[str, Any]] = {
        name: dict(table) for name, table in defaults["policies"].items()
    }
    exempt: list[Any] = list(defaults.get("exempt", []))
    source = DEFAULT_POLICY_FILE
    if path is not None:
        source = path
        overrides = _read_toml(path)
        unknown = sorted(set(overrides) - _TOP_LEVEL_FIELDS)
        if unknown:
            raise PolicyFileError(f"{path}: unknown top-level keys {unknown}")
        if "exempt" in overrides:
            exempt = _as_list(path, "exempt", overrides["exempt"])
        tables = overrides.get("policies", {})
        if not isinstance(tables, dict):
            raise PolicyFileError(f"{path}: policies must be a table of [policies.<name>]")
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise PolicyFileError(f"{path}: policies.{name} must be a table")
            unknown = sorted(set(table) - _POLICY_FIELDS)
            if unknown:
                raise PolicyFileError(f"{path}: policies.{name}: unknown fields {unknown}")
            if name not in merged_policies:
                missing = sorted(_REQUIRED_POLICY_FIELDS - set(table))
                if missing:
                    raise PolicyFileError(
                        f"{path}: policies.{name} is a new policy and must set {missing}"
                    )
            merged_policies.setdefault(name, {}).update(table)
    policies = {name: _build_policy(source, name, table) for name, table in merged_policies.items()}
    exempt_patterns = tuple(_patterns(source, "exempt", exempt))
    _refuse_duplicate_routes(source, policies.values(), exempt_patterns)
    _check_companions(source, policies)
    return PolicySet(policies=policies, exempt=exempt_patterns)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise PolicyFileError(
            f"{path}: cannot read the rate-limit policy file ({exc.strerror})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(f"{path}: invalid TOML ({exc})") from None


def _as_list(path: Path, where: str, value: object) -> list[Any]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PolicyFileError(f"{path}: {where} must be a list of strings")
    return value


def _patterns(path: Path, where: str, values: object) -> Iterable[RoutePattern]:
    for text in _as_list(path, where, values):
        try:
            yield RoutePattern.parse(text)
        except ValueError as exc:
            raise PolicyFileError(f"{path}: {where}: {exc}") from None


def _bounded_int(path: Path, where: str, value: object, maximum: int) -> int:
    # bool is an int subclass: `quota = true` must not mean one request.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise PolicyFileError(f"{path}: {where} must be an integer from 1 to {maximum}")
    return value


def _build_policy(path: Path, name: str, table: Mapping[str, Any]) -> Policy:
    if not _POLICY_NAME.match(name):
        raise PolicyFileError(f"{path}: policy name {name!r} must match {_POLICY_NAME.pattern}")
    where = f"policies.{name}"
    key_text = table["key"]
    try:
        key = KeySpec.parse(key_text if isinstance(key_text, str) else "")
    except ValueError as exc:
        raise PolicyFileError(f"{path}: {where}.key {exc}") from None
    return Policy(
        name=name,
        quota=_bounded_int(path, f"{where}.quota", table["quota"], MAX_QUOTA),
        window_seconds=_bounded_int(
            path, f"{where}.window_seconds", table["window_seconds"], MAX_WINDOW_SECONDS
        ),
        key=key,
        routes=tuple(_patterns(path, f"{where}.routes", table["routes"])),
        companions=tuple(_as_list(path, f"{where}.companions", table.get("companions", []))),
    )


def _check_companions(path: Path, policies: Mapping[str, Policy]) -> None:
    """A companion exists, is not the policy itself, has no companions of its own, and keys
    on the IP or the user (the body is read once, for the policy's own key)."""
    for policy in policies.values():
        where = f"policies.{policy.name}.companions"
        for name in policy.companions:
            companion = policies.get(name)
            if companion is None or name == policy.name:
                raise PolicyFileError(f"{path}: {where}: {name!r} is not another policy")
            if companion.companions:
                raise PolicyFileError(f"{path}: {where}: {name!r} has companions of its own")
            if companion.key.kind in ("ip+body", "body"):
                raise PolicyFileError(f"{path}: {where}: {name!r} must key on ip or user")


def _refuse_duplicate_routes(
    path: Path, policies: Iterable[Policy], exempt: tuple[RoutePattern, ...]
) -> None:
    """One route entry in two places would make the choice depend on file order: refuse it."""
    owner: dict[tuple[str | None, str, bool], str] = {}
    entries = [("exempt", pattern) for pattern in exempt]
    entries += [(policy.name, pattern) for policy in policies for pattern in policy.routes]
    for name, pattern in entries:
        previous = owner.setdefault(pattern.identity, name)
        if previous != name:
            raise PolicyFileError(
                f"{path}: route {pattern.text!r} is listed under both {previous} and {name}"
            )
