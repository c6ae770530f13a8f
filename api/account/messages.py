"""The account emails: what each says and where its link points."""

from __future__ import annotations

from datetime import datetime

from api.email.message import OutgoingEmail
from api.email.templates import render
from api.settings import Settings


def _duration(seconds: int) -> str:
    if seconds % 86_400 == 0:
        days = seconds // 86_400
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _link(settings: Settings, page: str, token: str) -> str:
    # In the fragment: browsers never send it to a server, so the token stays out of the front
    # end's access logs and Referer headers; the page reads it and posts it to the API.
    return f"{settings.email_link_base_url}/{page}#token={token}"


def verification_email(settings: Settings, to: str, token: str) -> OutgoingEmail:
    return render(
        "verify_email",
        to,
        product=settings.product_name,
        link=_link(settings, "verify-email", token),
        valid_for=_duration(settings.email_verification_ttl_seconds),
    )


def password_reset_email(settings: Settings, to: str, token: str) -> OutgoingEmail:
    return render(
        "password_reset",
        to,
        product=settings.product_name,
        link=_link(settings, "reset-password", token),
        valid_for=_duration(settings.password_reset_ttl_seconds),
    )


def password_changed_email(
    settings: Settings, to: str, changed_at: datetime, *, signed_out_everywhere: bool
) -> OutgoingEmail:
    sessions = (
        "Every device signed in to your account was signed out."
        if signed_out_everywhere
        else "Your other devices were signed out."
    )
    return render(
        "password_changed",
        to,
        product=settings.product_name,
        changed_at=changed_at.strftime("%Y-%m-%d %H:%M UTC"),
        sessions=sessions,
    )
