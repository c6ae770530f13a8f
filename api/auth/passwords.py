"""Password policy and hashing (argon2id through pwdlib).

Hashing is deliberately expensive, so it runs in worker threads (argon2-cffi releases the GIL)
behind a limiter: a burst of logins queues instead of blocking the event loop or allocating
argon2's memory for every request at once. pwdlib and argon2-cffi load with the first hash,
not at start-up: most requests (and every Lambda cold start) never hash a password.
"""

from __future__ import annotations

import gzip
import os
import secrets
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from api.settings import MIN_PASSWORD_LENGTH

if TYPE_CHECKING:
    from pwdlib import PasswordHash

# Long enough for any passphrase, short enough that hashing input stays cheap to receive.
MAX_PASSWORD_LENGTH = 1024
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common-passwords.txt.gz")

_hashing_slots = anyio.CapacityLimiter(max(2, os.cpu_count() or 1))


@cache
def password_hasher() -> PasswordHash:
    """argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about 25 ms on one
    core, against 100+ ms and 64 MiB for argon2-cffi's defaults, which would cap a 2-vCPU task at
    a handful of logins per second. Hashes made with other parameters still verify and are
    replaced at the next successful login."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    return PasswordHash((Argon2Hasher(time_cost=2, memory_cost=19_456, parallelism=1),))


@cache
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def password_problem(password: str) -> str | None:
    """Why this password is refused, or None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must have at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"password must have at most {MAX_PASSWORD_LENGTH} characters"
    if password.strip().lower() in common_passwords():
        return "password is too common"
    return None


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(password_hasher().hash, password, limiter=_hashing_slots)


async def verify_password(password: str, stored_hash: str) -> tuple[bool, str | None]:
    """(valid, replacement hash when the stored one uses outdated parameters)."""
    return await anyio.to_thread.run_sync(
        password_hasher().verify_and_update, password, stored_hash, limiter=_hashing_slots
    )


@cache
def _dummy_hash() -> str:
    return password_hasher().hash(secrets.token_urlsafe(24))


async def burn_verification_time(password: str) -> None:
    """Spend what verifying a real hash costs, so unknown emails cannot be told apart by timing."""
    await anyio.to_thread.run_sync(
        password_hasher().verify, password, _dummy_hash(), limiter=_hashing_slots
    )
