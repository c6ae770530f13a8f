"""PostgreSQL side of the backup: connection details, table inventories, pg_dump and pg_restore.

Passwords never appear in a command line (other users of the machine can read those) nor in
any message: the client tools get them through PGPASSWORD in their environment.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

CONNECT_TIMEOUT_SECONDS = 10
# Query parameters of a database URL that libpq understands and are not secrets.
_LIBPQ_PARAMETERS = frozenset(
    {"sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "options"}
)


class BackupError(RuntimeError):
    """A step of the backup failed; the message is safe to show (no credentials)."""


@dataclass(frozen=True, slots=True)
class Connection:
    """A database's libpq connection string (without password) and its password."""

    conninfo: str
    password: str | None
    database: str

    @classmethod
    def from_url(cls, database_url: str) -> Connection:
        url = make_url(database_url)
        if not url.drivername.startswith("postgres"):
            raise BackupError("backup needs a PostgreSQL database URL")
        if not url.database:
            raise BackupError("the database URL names no database")
        parameters = {
            key: str(value) for key, value in url.query.items() if key in _LIBPQ_PARAMETERS
        }
        conninfo = make_conninfo(
            host=url.host or "",
            port=str(url.port or ""),
            user=url.username or "",
            dbname=url.database,
            connect_timeout=str(CONNECT_TIMEOUT_SECONDS),
            **parameters,
        )
        return cls(conninfo, url.password, url.database)

    def with_database(self, database: str) -> Connection:
        return Connection(make_conninfo(self.conninfo, dbname=database), self.password, database)

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(self.conninfo, password=self.password, autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise BackupError(f"cannot connect to database {self.database!r}: {exc}") from exc

    def client_environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        if self.password is not None:
            environment["PGPASSWORD"] = self.password
        return environment


@dataclass(frozen=True, slots=True)
class Inventory:
    server_version: str
    tables: dict[str, int]  # "schema.table" -> exact row count


_USER_TABLES = """
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1, 2
"""


def take_inventory(connection: psycopg.Connection[tuple[object, ...]]) -> Inventory:
    """Tables and exact row counts, as seen by the connection's current transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        version_row = cursor.fetchone()
        cursor.execute(_USER_TABLES)
        names = [(str(schema), str(table)) for schema, table in cursor.fetchall()]
        tables: dict[str, int] = {}
        for schema, table in names:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table)))
            count_row = cursor.fetchone()
            tables[f"{schema}.{table}"] = int(str(count_row[0])) if count_row else 0
    return Inventory(str(version_row[0]) if version_row else "unknown", tables)


@contextmanager
def exported_snapshot(
    connection: Connection,
) -> Iterator[tuple[str, Inventory]]:
    """A repeatable-read snapshot held open: its id for `pg_dump --snapshot` and the inventory
    seen through it, so the manifest's row counts are exactly those inside the dump."""
    with connection.connect() as database:
        database.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        database.read_only = True
        with database.transaction():
            row = database.execute("SELECT pg_catalog.pg_export_snapshot()").fetchone()
            if row is None:
                raise BackupError("the server exported no snapshot")
            yield str(row[0]), take_inventory(database)


def tool_version(tool: str) -> str:
    completed = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [tool, "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    return completed.stdout.strip() or "unknown"


def start_dump(
    connection: Connection, snapshot: str | None, errors: IO[bytes]
) -> subprocess.Popen[bytes]:
    """`pg_dump -Fc` writing to a pipe; the caller streams stdout and then checks the exit.

    Its messages go to `errors` (a file, not a second pipe: a pipe nobody reads while the dump
    streams would block pg_dump once full)."""
    command = ["pg_dump", "--format=custom", "--no-password", f"--dbname={connection.conninfo}"]
    if snapshot:
        command.append(f"--snapshot={snapshot}")
    try:
        return subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            command,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=connection.client_environment(),
        )
    except FileNotFoundError as exc:
        raise BackupError("pg_dump is not installed (Debian package postgresql-client)") from exc


def restore(connection: Connection, dump: Path, *, clean: bool = False) -> None:
    """pg_restore `dump` into the database; `clean` first drops what the dump recreates."""
    command = [
        "pg_restore",
        "--no-password",
        "--no-owner",
        "--no-acl",
        "--exit-on-error",
        *(["--clean", "--if-exists"] if clean else []),
        f"--dbname={connection.conninfo}",
        str(dump),
    ]
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            command,
            capture_output=True,
            text=True,
            env=connection.client_environment(),
            check=False,
        )
    except FileNotFoundError as exc:
        raise BackupError("pg_restore is not installed (package postgresql-client)") from exc
    if completed.returncode != 0:
        raise BackupError(f"pg_restore failed: {completed.stderr.strip()[-2000:]}")


@contextmanager
def scratch_database(connection: Connection) -> Iterator[Connection]:
    """A new empty database on the same server, dropped afterwards whatever happens."""
    name = f"slipway_verify_{uuid.uuid4().hex[:12]}"
    with connection.connect(autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield connection.with_database(name)
    finally:
        with connection.connect(autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
