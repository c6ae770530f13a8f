"""Schemathesis hooks and checks for the DAST run (loaded through SCHEMATHESIS_HOOKS).

A generated request plays a well-behaved client in positive cases, for the rules a JSON Schema
cannot state: the API requires a fresh Idempotency-Key per distinct payment (reusing one with
another body is rightly refused), accepts only cursors it issued, refuses passwords found in its
list of common passwords, and accepts only the addresses email-validator does (`format: email`
also admits quoted local parts, IP literals and special-use domains such as `.test`). Each is
replaced only when the API's own rule refuses it. Negative cases keep whatever was generated, so
malformed keys, cursors, passwords and addresses are still sent and must be refused with a 4xx.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from api.auth.emails import InvalidEmailError, normalise_email
from api.auth.passwords import MAX_PASSWORD_LENGTH, common_passwords

# What a response body must never contain: a Python traceback or the name of an exception
# raised by the database, the drivers or the framework.
LEAKED_INTERNALS = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+"
    r"|sqlalchemy\.|psycopg\.|asyncpg\.|aiosqlite\.|redis\.exceptions|pydantic_core\."
    r"|RecursionError|KeyError|AttributeError|TypeError: "
)


def _is_positive(case: schemathesis.Case[Any], location: ParameterLocation) -> bool:
    meta = case.meta
    if meta is None:
        return False
    component = meta.components.get(location)
    mode = component.mode if component is not None else meta.generation.mode
    return mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: schemathesis.Case[Any], **kwargs: Any) -> None:
    headers = case.headers
    if headers and "Idempotency-Key" in headers and _is_positive(case, ParameterLocation.HEADER):
        headers["Idempotency-Key"] = str(uuid.uuid4())
    if case.query and "cursor" in case.query and _is_positive(case, ParameterLocation.QUERY):
        del case.query["cursor"]
    body = case.body
    if isinstance(body, dict) and _is_positive(case, ParameterLocation.BODY):
        for field in ("password", "new_password"):
            password = body.get(field)
            if isinstance(password, str) and password.strip().lower() in common_passwords():
                body[field] = f"{password}-{uuid.uuid4().hex}"[:MAX_PASSWORD_LENGTH]
        email = body.get("email")
        if isinstance(email, str) and case.operation.path == "/v1/auth/register":
            try:
                normalise_email(email)
            except InvalidEmailError:
                body["email"] = f"dast-{uuid.uuid4().hex}@example.com"


@schemathesis.check
def no_leaked_internals(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """No response, whatever its status, shows a stack trace or an internal exception."""
    found = LEAKED_INTERNALS.search(response.text or "")
    if found is not None:
        raise AssertionError(f"the response leaks internals: {found.group(0)!r}")
    return None
