"""The ignore file: advisories the team has accepted, each with a reason and an optional expiry.

```toml
[[ignore]]
id = "PYSEC-2023-74"          # or any alias (CVE-…, GHSA-…)
reason = "we never send proxy credentials"
expires = 2026-12-31          # optional; from that day on the finding counts again
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

MAX_REASON_LENGTH = 1000


class IgnoreFileError(ValueError):
    """The ignore file is malformed; the scan refuses to guess what was meant."""


@dataclass(frozen=True, slots=True)
class IgnoreRule:
    id: str
    reason: str
    expires: date | None = None

    def active_on(self, today: date) -> bool:
        return self.expires is None or today < self.expires


def load_ignore_rules(path: Path) -> list[IgnoreRule]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IgnoreFileError(f"cannot read ignore file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise IgnoreFileError(f"ignore file {path} is not valid TOML: {exc}") from exc
    entries = document.get("ignore", [])
    if not isinstance(entries, list):
        raise IgnoreFileError(f"{path}: `ignore` must be an array of tables ([[ignore]])")
    rules: list[IgnoreRule] = []
    for index, entry in enumerate(entries, start=1):
        where = f"{path}: ignore entry {index}"
        if not isinstance(entry, dict):
            raise IgnoreFileError(f"{where} is not a table")
        identifier, reason, expires = entry.get("id"), entry.get("reason"), entry.get("expires")
        if not isinstance(identifier, str) or not identifier.strip():
            raise IgnoreFileError(f"{where} needs an `id`")
        if not isinstance(reason, str) or not reason.strip():
            raise IgnoreFileError(f"{where} ({identifier}) needs a `reason`")
        if expires is not None and (not isinstance(expires, date) or hasattr(expires, "hour")):
            raise IgnoreFileError(f"{where} ({identifier}): `expires` must be a date (YYYY-MM-DD)")
        unknown = set(entry) - {"id", "reason", "expires"}
        if unknown:
            raise IgnoreFileError(f"{where} ({identifier}): unknown keys {sorted(unknown)}")
        rules.append(IgnoreRule(identifier.strip(), reason.strip()[:MAX_REASON_LENGTH], expires))
    return rules
