"""Email normalisation: one account per mailbox, however the address is typed."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from api.auth.models import EMAIL_MAX_LENGTH


class InvalidEmailError(ValueError):
    pass


def normalise_email(raw: str) -> str:
    """The canonical form stored and looked up.

    email-validator normalises Unicode and the domain (IDNA, case); the local part is lowercased
    too because in practice mailboxes are case-insensitive, and two accounts that differ only by
    case are a support problem and a phishing aid.
    """
    candidate = raw.strip()
    if not candidate or len(candidate) > EMAIL_MAX_LENGTH:
        raise InvalidEmailError("email is not a valid address")
    try:
        validated = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmailError(f"email is not a valid address: {exc}") from None
    return validated.normalized.lower()
