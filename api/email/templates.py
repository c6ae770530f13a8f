"""Message templates: a subject, a plain-text body and an HTML body per template.

Templates are `string.Template` files beside this module (`<name>.txt`, `<name>.html`, the
subject in `SUBJECTS`). Every value substituted into HTML is escaped; the plain-text body
takes values as they are. The product name comes from PRODUCT_NAME.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

from api.email.message import OutgoingEmail

TEMPLATE_DIR = Path(__file__).with_name("templates")

SUBJECTS = {
    "verify_email": "Confirm your email address for $product",
    "password_reset": "Reset your $product password",
    "password_changed": "Your $product password was changed",
}
TEMPLATES = tuple(SUBJECTS)


@dataclass(frozen=True)
class _Parts:
    subject: Template
    text: Template
    html: Template


@cache
def _parts(name: str) -> _Parts:
    if name not in SUBJECTS:
        raise KeyError(f"no email template {name!r}")
    return _Parts(
        subject=Template(SUBJECTS[name]),
        text=Template((TEMPLATE_DIR / f"{name}.txt").read_text(encoding="utf-8")),
        html=Template((TEMPLATE_DIR / f"{name}.html").read_text(encoding="utf-8")),
    )


def render(name: str, to: str, *, product: str, **values: str) -> OutgoingEmail:
    """The message `name` for `to`; a missing value is an error, never an empty hole."""
    parts = _parts(name)
    plain = {"product": product, **values}
    escaped = {key: html.escape(value, quote=True) for key, value in plain.items()}
    # Header injection is impossible (the email package refuses newlines in headers), but a
    # product name with a newline would make that an error at send time: flatten it here.
    subject = " ".join(parts.subject.substitute(plain).split())
    return OutgoingEmail(
        template=name,
        to=to,
        subject=subject,
        text=parts.text.substitute(plain),
        html=parts.html.substitute(escaped),
    )
