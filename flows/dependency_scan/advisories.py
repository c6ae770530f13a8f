"""OSV advisories read from disk, and whether one affects a given package version.

The database layout is the PyPA advisory database's (`vulns/<package>/PYSEC-*.yaml`); OSV JSON
files (`*.json`) in the same layout work too. Version ranges follow the OSV schema: `ECOSYSTEM`
ranges of `introduced` / `fixed` / `last_affected` events plus explicit `versions` lists, with
PEP 440 ordering from `packaging`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from flows.dependency_scan.cvss import base_score, rating

ECOSYSTEM = "PyPI"
# Advisory files are small; anything far larger is not an advisory and is not parsed.
MAX_ADVISORY_BYTES = 1_000_000
_RANGE_EVENTS = frozenset({"introduced", "fixed", "last_affected"})


class AdvisoryDatabaseError(ValueError):
    """The advisory database directory is missing or unreadable."""


@dataclass(frozen=True, slots=True)
class Severity:
    rating: str  # critical | high | medium | low | none | unknown
    score: float | None = None
    vector: str | None = None


UNKNOWN_SEVERITY = Severity("unknown")


@dataclass(frozen=True, slots=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: Severity
    url: str | None
    # The `affected` entries naming PyPI packages, as in the file.
    affected: tuple[Mapping[str, Any], ...] = field(repr=False)

    def entries_for(self, package: str) -> list[Mapping[str, Any]]:
        return [
            entry
            for entry in self.affected
            if canonicalize_name(str(entry.get("package", {}).get("name", ""))) == package
        ]

    def affects(self, package: str, version: str) -> bool:
        return any(_entry_affects(entry, version) for entry in self.entries_for(package))

    def fixed_versions(self, package: str) -> list[str]:
        fixed = {
            str(event["fixed"])
            for entry in self.entries_for(package)
            for version_range in entry.get("ranges", [])
            if version_range.get("type") == "ECOSYSTEM"
            for event in version_range.get("events", [])
            if "fixed" in event
        }
        return sorted(fixed, key=_sort_key)


def _parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _sort_key(text: str) -> tuple[int, Version | str]:
    version = _parse_version(text)
    return (0, version) if version is not None else (1, text)


def _event_version(event: Mapping[str, Any]) -> tuple[str, Version | None]:
    kind, value = next(iter(event.items()))
    # "0" means "since the first release", lower than every real version.
    return str(kind), Version("0") if str(value) == "0" else _parse_version(str(value))


def _range_affects(events: Iterable[Mapping[str, Any]], version: Version) -> bool:
    """OSV's evaluation: walk the events in version order; the last one at or below `version`
    decides (introduced -> affected, fixed -> not; last_affected excludes only later versions).
    """
    parsed = [_event_version(event) for event in events if event]
    ordered = sorted(
        ((kind, at) for kind, at in parsed if at is not None), key=lambda pair: pair[1]
    )
    affected = False
    for kind, at in ordered:
        if kind not in _RANGE_EVENTS or version < at:
            continue
        if kind == "last_affected" and version == at:
            continue  # the last affected release itself is still affected
        affected = kind == "introduced"
    return affected


def _entry_affects(entry: Mapping[str, Any], version_text: str) -> bool:
    if version_text in {str(listed) for listed in entry.get("versions", [])}:
        return True
    version = _parse_version(version_text)
    if version is None:
        return False
    return any(
        _range_affects(version_range.get("events", []), version)
        for version_range in entry.get("ranges", [])
        if version_range.get("type") == "ECOSYSTEM"
    )


def _severity(document: Mapping[str, Any]) -> Severity:
    for item in document.get("severity") or []:
        vector = str(item.get("score", ""))
        if str(item.get("type", "")).startswith("CVSS_V3"):
            score = base_score(vector)
            if score is not None:
                return Severity(rating(score), score, vector)
    # GitHub-reviewed advisories state a rating in database_specific.
    stated = (document.get("database_specific") or {}).get("severity")
    if isinstance(stated, str) and stated.lower() in {"critical", "high", "medium", "low"}:
        return Severity(stated.lower())
    if stated == "MODERATE":
        return Severity("medium")
    vectors = [str(item.get("score")) for item in document.get("severity") or []]
    return Severity("unknown", None, vectors[0]) if vectors else UNKNOWN_SEVERITY


def _advisory_url(document: Mapping[str, Any]) -> str | None:
    references = document.get("references") or []
    for preferred in ("ADVISORY", "WEB"):
        for reference in references:
            if reference.get("type") == preferred and reference.get("url"):
                return str(reference["url"])
    return None


def parse_advisory(path: Path) -> Advisory | None:
    """The advisory in `path`, or None for withdrawn advisories and non-PyPI files."""
    if path.stat().st_size > MAX_ADVISORY_BYTES:
        return None
    text = path.read_text(encoding="utf-8")
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(document, dict) or "id" not in document or document.get("withdrawn"):
        return None
    affected = tuple(
        entry
        for entry in document.get("affected") or []
        if isinstance(entry, dict) and entry.get("package", {}).get("ecosystem") == ECOSYSTEM
    )
    if not affected:
        return None
    details = str(document.get("details") or "").strip()
    summary = str(document.get("summary") or details.split("\n", 1)[0])
    return Advisory(
        id=str(document["id"]),
        aliases=tuple(str(alias) for alias in document.get("aliases") or []),
        summary=summary[:500],
        severity=_severity(document),
        url=_advisory_url(document),
        affected=affected,
    )


class AdvisoryDatabase:
    """Advisories by canonical package name, read lazily, one package directory at a time."""

    def __init__(self, root: Path) -> None:
        vulns = root / "vulns"
        self.root = vulns if vulns.is_dir() else root
        if not self.root.is_dir():
            raise AdvisoryDatabaseError(
                f"advisory database {root} is not a directory (clone "
                "https://github.com/pypa/advisory-database there, or pass --advisory-db DIR)"
            )
        self._directories: dict[str, Path] = {
            canonicalize_name(entry.name): entry for entry in self.root.iterdir() if entry.is_dir()
        }
        self._cache: dict[str, list[Advisory]] = {}

    def advisories_for(self, package: str) -> list[Advisory]:
        if package not in self._cache:
            directory = self._directories.get(package)
            files = (
                []
                if directory is None
                else sorted([*directory.glob("*.yaml"), *directory.glob("*.json")])
            )
            parsed = (parse_advisory(path) for path in files)
            self._cache[package] = [
                advisory
                for advisory in parsed
                if advisory is not None and advisory.entries_for(package)
            ]
        return self._cache[package]
