"""The least-privilege role the API runs as on PostgreSQL, provisioned by the migrations.

Migrations run as the database owner (the RDS master user); after every upgrade they ensure the
application role exists and may read and write the application's tables, and nothing else: no
DDL, no role management, no access to Alembic's own table. The role is created once with the
password it is given; after that its password belongs to the rotation, never reset here.

The password never travels in clear text: PostgreSQL receives a SCRAM-SHA-256 verifier (as
`psql`'s \\password sends), so neither a failed statement in a log nor the server's statement
log can reveal it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy.engine import Connection

SCRAM_ITERATIONS = 4096
APPLICATION_SCHEMA = "public"
ALEMBIC_TABLE = "alembic_version"


def scram_sha256_verifier(password: str, salt: bytes | None = None) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677)."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def encode(value: bytes) -> str:
        return base64.b64encode(value).decode()

    return (
        f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{encode(salt)}${encode(stored_key)}:{encode(server_key)}"
    )


def provision_app_role(connection: Connection, role: str, password: str) -> None:
    """Creates `role` if absent and grants it DML on the application's tables and sequences."""
    from psycopg import sql  # PostgreSQL only

    def run(statement: sql.Composable) -> None:
        connection.exec_driver_sql(statement.as_string(None))

    name = sql.Identifier(role)
    exists = connection.exec_driver_sql(
        "SELECT 1 FROM pg_roles WHERE rolname = %(role)s", {"role": role}
    ).first()
    if exists is None:
        run(
            sql.SQL(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD {}"
            ).format(name, sql.Literal(scram_sha256_verifier(password)))
        )
    database = connection.exec_driver_sql("SELECT current_database()").scalar_one()
    schema = sql.Identifier(APPLICATION_SCHEMA)
    for statement in (
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), name),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, name),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(
            schema, name
        ),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema, name),
        sql.SQL("REVOKE ALL ON {}.{} FROM {}").format(schema, sql.Identifier(ALEMBIC_TABLE), name),
    ):
        run(statement)
