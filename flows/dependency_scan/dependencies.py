"""Reading the (name, version) pairs to scan from a uv.lock or a pip requirements file."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# Local projects (the application itself, path dependencies) are not published on PyPI, so no
# advisory can name them.
_LOCAL_SOURCES = frozenset({"virtual", "editable", "directory", "path"})
_MAX_INCLUDE_DEPTH = 10


class DependencyFileError(ValueError):
    """The lock or requirements file cannot be read as one."""


@dataclass(frozen=True, slots=True, order=True)
class Dependency:
    name: str  # canonical (PEP 503) name
    version: str
    source: str  # the file it was read from, for reports and SARIF locations
    line: int


@dataclass(frozen=True, slots=True)
class DependencySet:
    pinned: list[Dependency]
    # Requirements without an exact pin cannot be matched to one version; reports list them.
    unpinned: list[str]


def _package_lines(text: str) -> dict[str, int]:
    """1-based line of each `[[package]]` table's `name = "..."` entry in a uv.lock."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.fullmatch(r'name = "([^"]+)"', line.strip())
        if match:
            lines.setdefault(canonicalize_name(match.group(1)), number)
    return lines


def read_uv_lock(path: Path) -> DependencySet:
    text = path.read_text(encoding="utf-8")
    try:
        lock = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DependencyFileError(f"{path} is not a valid uv.lock: {exc}") from exc
    packages = lock.get("package")
    if not isinstance(packages, list):
        raise DependencyFileError(f"{path} has no [[package]] tables")
    lines = _package_lines(text)
    pinned: set[Dependency] = set()
    for package in packages:
        if not isinstance(package, dict) or "name" not in package:
            continue
        source = package.get("source", {})
        if isinstance(source, dict) and _LOCAL_SOURCES & source.keys():
            continue
        version = package.get("version")
        if not isinstance(version, str):
            continue
        name = canonicalize_name(str(package["name"]))
        pinned.add(Dependency(name, version, str(path), lines.get(name, 1)))
    return DependencySet(sorted(pinned), [])


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Requirement lines with comments stripped and backslash continuations joined."""
    result: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            result.append((start, joined))
    if pending.strip():
        result.append((start, pending.strip()))
    return result


def _exact_version(requirement: Requirement) -> str | None:
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator in {"==", "==="}:
        version = specifiers[0].version
        return None if version.endswith(".*") else version
    return None


def read_requirements(path: Path, _depth: int = 0) -> DependencySet:
    if _depth > _MAX_INCLUDE_DEPTH:
        raise DependencyFileError(f"{path}: requirement files include each other too deeply")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DependencyFileError(f"cannot read {path}: {exc.strerror}") from exc
    pinned: set[Dependency] = set()
    unpinned: list[str] = []
    for number, line in _logical_lines(text):
        include = re.match(r"^(?:-r|--requirement)(?:\s+|=)(\S+)", line)
        if include:
            nested = read_requirements(path.parent / include.group(1), _depth + 1)
            pinned.update(nested.pinned)
            unpinned.extend(nested.unpinned)
            continue
        if line.startswith("-"):
            continue  # other pip options: -c constraints, --index-url, -e local paths
        # Per-requirement options such as --hash follow the requirement itself.
        requirement_text = re.split(r"\s+--", line, maxsplit=1)[0]
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as exc:
            raise DependencyFileError(f"{path}:{number}: {exc}") from exc
        name = canonicalize_name(requirement.name)
        version = _exact_version(requirement)
        if version is None or requirement.url:
            unpinned.append(requirement_text)
        else:
            pinned.add(Dependency(name, version, str(path), number))
    return DependencySet(sorted(pinned), unpinned)
