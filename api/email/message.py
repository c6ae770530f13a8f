"""One outgoing message and its MIME form, the same bytes whichever transport delivers it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr


@dataclass(frozen=True)
class OutgoingEmail:
    template: str  # the metric label and log field; never the address
    to: str
    subject: str
    text: str
    html: str


def recipient_ref(address: str) -> str:
    """A stable reference to an address for logs, which never carry the address itself."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()[:12]


def sender_domain(from_address: str) -> str:
    _, address = parseaddr(from_address)
    return address.rpartition("@")[2] or "localhost"


def to_mime(email: OutgoingEmail, from_address: str) -> EmailMessage:
    """multipart/alternative (plain text first, HTML preferred by clients that can show it)."""
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = Address(addr_spec=email.to)
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender_domain(from_address))
    # RFC 3834: an automatic message; auto-responders must not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message
