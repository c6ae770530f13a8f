"""EMAIL_SMTP_URL: `smtp://user:pass@host:587?starttls=true` or `smtps://user:pass@host:465`.

Parsed without any SMTP library so that settings can refuse a bad URL at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORTS = {"smtp": 587, "smtps": 465}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class SmtpUrlError(ValueError):
    """The URL is unusable; the message never repeats it (it may hold a password)."""


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool  # smtps://: TLS from the first byte
    starttls: bool | None  # True: required; False: never; None: when the server offers it

    @property
    def requires_tls(self) -> bool:
        return self.implicit_tls or self.starttls is True


def _flag(query: dict[str, list[str]], name: str) -> bool | None:
    values = query.get(name)
    if not values:
        return None
    value = values[-1].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SmtpUrlError(f"EMAIL_SMTP_URL: {name} must be true or false")


def parse_smtp_url(url: str) -> SmtpServer:
    parts = urlsplit(url.strip())
    if parts.scheme not in DEFAULT_PORTS:
        raise SmtpUrlError("EMAIL_SMTP_URL must start with smtp:// or smtps://")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise SmtpUrlError("EMAIL_SMTP_URL has an invalid port") from None
    if not parts.hostname:
        raise SmtpUrlError("EMAIL_SMTP_URL names no host")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"starttls"})
    if unknown:
        raise SmtpUrlError(f"EMAIL_SMTP_URL: unknown parameters {unknown}")
    starttls = _flag(query, "starttls")
    implicit_tls = parts.scheme == "smtps"
    if implicit_tls and starttls:
        raise SmtpUrlError("EMAIL_SMTP_URL: smtps:// is already TLS; drop starttls=true")
    return SmtpServer(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        implicit_tls=implicit_tls,
        starttls=False if implicit_tls else starttls,
    )
