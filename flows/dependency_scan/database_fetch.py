"""The advisory database when none is on disk: OSV's zip export of PyPI advisories (or a mirror
of it), downloaded with a timeout, checked to be a zip of OSV JSON documents, unpacked into the
layout the scan reads (`vulns/<package>/<id>.json`) and kept with its date in `database.json`.

A scan against an old database is a quiet lie ("no findings"), so age is a failure: a cached
copy older than the allowed age is fetched again, and a source that serves an old one (a mirror
that stopped syncing) or cannot be reached fails the run with a message saying which.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from packaging.utils import canonicalize_name

from flows.dependency_scan.advisories import ECOSYSTEM, MAX_ADVISORY_BYTES
from flows.progress import ByteProgress

DATABASE_INFO = "database.json"
TIMEOUT_SECONDS = 30.0  # connect, and each read: a silent server fails fast
DEADLINE_SECONDS = 900.0  # the whole download: a trickling server fails too
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
MAX_UNPACKED_BYTES = 2 * 1024 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}")


class AdvisoryFetchError(RuntimeError):
    """No usable advisory database: unreachable, not OSV, or too old. Says which."""


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    path: Path
    source: str | None  # None: placed on disk by someone else (a clone, a fixture)
    published_at: datetime | None
    fetched_at: datetime | None
    advisories: int | None

    def age_days(self, now: datetime) -> float | None:
        if self.published_at is None:
            return None
        return max(0.0, (now - self.published_at).total_seconds() / 86400)

    def as_json(self, now: datetime) -> dict[str, Any]:
        age = self.age_days(now)
        return {
            "path": str(self.path),
            "source": self.source,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "fetched_at": self.fetched_at.isoformat() if self.fetched_at else None,
            "age_days": round(age, 2) if age is not None else None,
            "advisories": self.advisories,
        }

    def describe(self, now: datetime) -> str:
        age = self.age_days(now)
        if self.source is None or self.published_at is None or age is None:
            return f"advisory database {self.path} (placed on disk; its age is not known)"
        return (
            f"advisory database from {self.source}, published "
            f"{self.published_at:%Y-%m-%d %H:%M} UTC ({age:.1f} days old), "
            f"{self.advisories} advisories"
        )


def display_url(url: str) -> str:
    """The URL without credentials or query (a mirror's URL may carry either)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def read_info(path: Path) -> DatabaseInfo | None:
    """What `database.json` says of a database this module fetched; None when there is none."""
    try:
        data = json.loads((path / DATABASE_INFO).read_text(encoding="utf-8"))
        return DatabaseInfo(
            path=path,
            source=str(data["source"]),
            published_at=datetime.fromisoformat(data["published_at"]),
            fetched_at=datetime.fromisoformat(data["fetched_at"]),
            advisories=int(data["advisories"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def ensure_database(
    path: Path,
    url: str,
    max_age_days: int,
    *,
    now: datetime | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> DatabaseInfo:
    """The database at `path`: as it is when placed there by hand, the cached copy while it is
    young enough, else freshly fetched from `url`."""
    now = now or datetime.now(UTC)
    cached = read_info(path)
    if cached is None and path.is_dir() and any(path.iterdir()):
        return DatabaseInfo(path, None, None, None, None)
    if cached is not None and (cached.age_days(now) or 0) <= max_age_days:
        return cached
    source = display_url(url)
    try:
        fresh = fetch(url, path, timeout=timeout, now=now)
    except AdvisoryFetchError as exc:
        if cached is not None:
            raise AdvisoryFetchError(
                f"the advisory database at {path} is {cached.age_days(now):.1f} days old "
                f"(more than {max_age_days}) and could not be refreshed from {source}: {exc}"
            ) from exc
        raise AdvisoryFetchError(
            f"no advisory database at {path}, and none could be fetched from {source}: {exc} "
            "(set --advisory-db-url or FLOWS_ADVISORY_DB_URL to a reachable mirror of OSV's "
            "PyPI export, or place a database at --advisory-db)"
        ) from exc
    age = fresh.age_days(now) or 0
    if age > max_age_days:
        raise AdvisoryFetchError(
            f"{source} serves an advisory database published {fresh.published_at:%Y-%m-%d} "
            f"({age:.1f} days ago, more than {max_age_days}): is the source still updated?"
        )
    return fresh


def fetch(url: str, path: Path, *, timeout: float, now: datetime) -> DatabaseInfo:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".advisories-", dir=path.parent) as work:
        archive = Path(work) / "advisories.zip"
        published_at, sha256 = _download(url, archive, timeout)
        staged = Path(work) / "database"
        count = unpack(archive, staged)
        info = DatabaseInfo(path, display_url(url), published_at or now, now, count)
        (staged / DATABASE_INFO).write_text(
            json.dumps({**info.as_json(now), "sha256": sha256}, indent=2) + "\n"
        )
        _replace_directory(staged, path)
    return info


def _download(url: str, destination: Path, timeout: float) -> tuple[datetime | None, str]:
    """Stream `url` to `destination`; returns the server's Last-Modified and the sha256."""
    digest = hashlib.sha256()
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != 200:
                raise AdvisoryFetchError(f"HTTP {response.status_code}")
            total = int(response.headers.get("content-length") or 0) or None
            if total and total > MAX_DOWNLOAD_BYTES:
                raise AdvisoryFetchError(f"{total} bytes is more than {MAX_DOWNLOAD_BYTES}")
            published_at = _last_modified(response.headers.get("last-modified"))
            received = 0
            with (
                destination.open("wb") as file,
                ByteProgress("advisory database download", total) as progress,
            ):
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    received += len(chunk)
                    if received > MAX_DOWNLOAD_BYTES:
                        raise AdvisoryFetchError(f"more than {MAX_DOWNLOAD_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise AdvisoryFetchError(f"not complete after {DEADLINE_SECONDS:.0f} s")
                    digest.update(chunk)
                    file.write(chunk)
                    progress.advance(len(chunk))
    except httpx.TimeoutException as exc:
        raise AdvisoryFetchError(f"timed out ({type(exc).__name__}, {timeout:.0f} s)") from exc
    except httpx.HTTPError as exc:
        raise AdvisoryFetchError(f"{type(exc).__name__}: {exc}") from exc
    return published_at, digest.hexdigest()


def _last_modified(header: str | None) -> datetime | None:
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def unpack(archive: Path, destination: Path) -> int:
    """Every member must be an OSV JSON document; each lands under each PyPI package it
    affects. Returns the number of documents."""
    if not zipfile.is_zipfile(archive):
        raise AdvisoryFetchError("the download is not a zip archive")
    with zipfile.ZipFile(archive) as bundle:
        members = [member for member in bundle.infolist() if not member.is_dir()]
        if not members:
            raise AdvisoryFetchError("the zip archive is empty")
        if sum(member.file_size for member in members) > MAX_UNPACKED_BYTES:
            raise AdvisoryFetchError(f"the archive unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        for member in members:
            _unpack_document(bundle, member, destination)
    return len(members)


def _unpack_document(bundle: zipfile.ZipFile, member: zipfile.ZipInfo, destination: Path) -> None:
    name = PurePosixPath(member.filename).name
    if not name.endswith(".json") or member.file_size > MAX_ADVISORY_BYTES:
        raise AdvisoryFetchError(f"{member.filename} is not an OSV JSON document")
    try:
        document = json.loads(bundle.read(member))
    except (ValueError, zipfile.BadZipFile) as exc:
        raise AdvisoryFetchError(f"{member.filename} is not valid JSON") from exc
    identifier = document.get("id") if isinstance(document, dict) else None
    if (
        not isinstance(identifier, str)
        or not _SAFE_NAME.fullmatch(identifier)
        or "modified" not in document
    ):
        raise AdvisoryFetchError(f"{member.filename} is not an OSV document (id, modified)")
    packages = {
        canonicalize_name(str(entry.get("package", {}).get("name", "")))
        for entry in document.get("affected") or []
        if isinstance(entry, dict) and entry.get("package", {}).get("ecosystem") == ECOSYSTEM
    }
    for package in packages:
        if _SAFE_NAME.fullmatch(package):
            folder = destination / "vulns" / package
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{identifier}.json").write_text(json.dumps(document))


def _replace_directory(staged: Path, path: Path) -> None:
    """Swap the new database in; the old one is removed only once the new one is in place."""
    previous = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    if path.exists():
        path.rename(previous)
    staged.rename(path)
    shutil.rmtree(previous, ignore_errors=True)
