"""Email normalisation: one account per mailbox, however the address is typed."""

from __future__ import annotations

import unicodedata

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


# Scripts that may share one local part (Unicode TS 39 "highly restrictive": Latin with Han
# and Japanese kana, or with Han and Hangul, or Han and Bopomofo); the first word of a
# letter's Unicode name is its script ("CJK UNIFIED IDEOGRAPH-4E00" is Han).
_SCRIPT_FAMILIES = (
    frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "CJK", "HANGUL"}),
    frozenset({"LATIN", "CJK", "BOPOMOFO"}),
)


def _scripts(text: str) -> set[str]:
    # Digits, dots, hyphens and combining marks belong to every script: letters decide.
    return {unicodedata.name(char, "?").split(" ", 1)[0] for char in text if char.isalpha()}


def mixed_script_problem(normalised: str) -> str | None:
    """Why a new address is refused as a look-alike, or None.

    An alice@ whose first letter is the Cyrillic U+0430 is another mailbox than alice@, and
    would register as another account that looks the same on every screen. A local part
    mixing scripts (or Latin with fullwidth or mathematical letters, which have names of
    their own) is refused; a single-script one in any script is fine. The standard library
    suffices: confusable-homoglyphs costs 0.35 s or more at import (urllib.request and 1 MB
    of JSON), on every cold start.
    """
    scripts = _scripts(normalised.rpartition("@")[0])
    if len(scripts) <= 1 or any(scripts <= family for family in _SCRIPT_FAMILIES):
        return None
    return "the part before @ mixes writing systems (look-alike letters are not allowed)"
