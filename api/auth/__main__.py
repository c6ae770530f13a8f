"""Account administration from a shell (a one-off task in a deployment).

    python -m api.auth create-admin --email ops@example.com            # prompts for the password
    printf '%s\\n' "$PW" | python -m api.auth create-admin --email ops@example.com --password-stdin
    python -m api.auth disable-user --email someone@example.com

The password is never taken from the command line, where it would be visible to other users
of the machine and kept in shell history. DATABASE_URL (and the rest) come from the settings.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence

from api.auth import service
from api.db import Database
from api.settings import SettingsError, get_settings


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password for the new admin: ")
    if getpass.getpass("Repeat the password: ") != password:
        raise service.AuthError("the passwords do not match")
    return password


async def _create_admin(database: Database, email: str, password: str) -> str:
    async with database.sessions() as db:
        user = await service.register_user(db, email, password, role="admin", verified=True)
    return f"created admin {user.email} ({user.id})"


async def _disable_user(database: Database, email: str) -> str:
    async with database.sessions() as db:
        user = await service.user_by_email(db, email)
        if user is None:
            raise service.AuthError(f"no user with email {email}")
        await service.disable_user(db, user.id)
    return f"disabled {user.email}; their sessions are revoked"


async def _run(args: argparse.Namespace) -> str:
    database = Database.from_settings(get_settings())
    try:
        if args.command == "create-admin":
            return await _create_admin(database, args.email, _read_password(args.password_stdin))
        return await _disable_user(database, args.email)
    finally:
        await database.dispose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m api.auth", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="create an administrator account")
    create.add_argument("--email", required=True)
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of prompting",
    )
    disable = commands.add_parser(
        "disable-user", help="lock a user out: revoke their sessions and refuse their tokens"
    )
    disable.add_argument("--email", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        print(asyncio.run(_run(args)))
    except (service.AuthError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
