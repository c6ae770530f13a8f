"""A throwaway PostgreSQL server that, like RDS with `rds.force_ssl=1`, accepts only TLS
connections with password (SCRAM) authentication, its certificate issued by a throwaway CA.

Clients must be given the CA (`ca_file`) to verify the server, exactly as deployed clients are
given the RDS CA bundle: a client that verifies against the system trust store fails here as it
would against RDS. The server runs from the machine's PostgreSQL binaries in a temporary
directory on a free port, as the `postgres` OS user when started by root (initdb refuses root),
as a child of the calling process that dies with it.
"""

from __future__ import annotations

import ctypes
import datetime
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SUPERUSER = "postgres"
START_TIMEOUT_SECONDS = 30
PR_SET_PDEATHSIG = 1  # prctl(2)
HOSTNAME = "localhost"


class PostgresUnavailable(RuntimeError):
    """The machine has no PostgreSQL server binaries (initdb, postgres)."""


@dataclass(frozen=True)
class TlsPostgres:
    host: str
    port: int
    superuser: str
    superuser_password: str
    ca_file: Path
    socket_dir: Path
    log_file: Path  # the server's log: refused logins are written here

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        """A SQLAlchemy psycopg URL that verifies the server (verify-full), credentials optional."""
        auth = ""
        if user:
            auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "") + "@"
        return (
            f"postgresql+psycopg://{auth}{self.host}:{self.port}/{database}"
            f"?sslmode=verify-full&sslrootcert={quote(str(self.ca_file), safe='/')}"
        )

    def libpq_dsn(self, database: str = "postgres", **options: str) -> str:
        """A verifying (verify-full) libpq connection string as the superuser."""
        parts = {
            "host": self.host,
            "port": str(self.port),
            "dbname": database,
            "user": self.superuser,
            "password": self.superuser_password,
            "sslmode": "verify-full",
            "sslrootcert": str(self.ca_file),
            **options,
        }
        return " ".join(f"{key}={value}" for key, value in parts.items())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for localhost/127.0.0.1 signed by it:
    (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    lifetime = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Slipway rehearsal throwaway CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(HOSTNAME))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(HOSTNAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_key(server_key))
    paths[2].chmod(0o600)
    return paths


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (bindir / name).exists():
                return str(bindir / name)
        raise PostgresUnavailable(f"{name} not found (PostgreSQL server binaries)")
    return found


def _as_server_user(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` OS user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SUPERUSER, "--", *command]


def _hand_over(path: Path) -> None:
    if os.geteuid() != 0:
        return
    account = pwd.getpwnam(SUPERUSER)
    for root, dirs, files in os.walk(path):
        os.chown(root, account.pw_uid, account.pw_gid)
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), account.pw_uid, account.pw_gid)


@contextmanager
def tls_postgres() -> Iterator[TlsPostgres]:
    """Starts the server (a few seconds), yields how to reach it, stops and deletes it."""
    initdb = _binary("initdb")
    with tempfile.TemporaryDirectory(prefix="slipway-tls-pg-") as temporary:
        base = Path(temporary)
        base.chmod(0o755)
        ca_file, certificate, key = write_certificates(base)
        ca_file.chmod(0o644)
        data = base / "data"
        password = secrets.token_urlsafe(24)
        password_file = base / "superuser-password"
        password_file.write_text(password, encoding="utf-8")
        _hand_over(base)
        subprocess.run(
            _as_server_user(
                [
                    initdb,
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    "--pwfile",
                    str(password_file),
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )
        port = free_port()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{base}'",
            "ssl": "on",
            "ssl_cert_file": f"'{certificate}'",
            "ssl_key_file": f"'{key}'",
            "ssl_min_protocol_version": "'TLSv1.2'",
            "password_encryption": "'scram-sha-256'",
            "fsync": "off",
            "max_connections": "100",
        }
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        # As RDS with rds.force_ssl=1: TCP clients must use TLS and a password.
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostnossl all all 0.0.0.0/0 reject\n",
            encoding="utf-8",
        )
        _hand_over(data)
        log = base / "server.log"
        # The server is this process's child (no pg_ctl daemon) and gets SIGQUIT (immediate
        # shutdown) from the kernel if this process dies: a killed test run leaves no server.
        with log.open("wb") as output:
            server = subprocess.Popen(
                [_binary("postgres"), "-D", str(data)],
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_server_process,  # prctl and setuid between fork and exec
            )
        try:
            _wait_ready(server, base, port, log)
            yield TlsPostgres(
                host=HOSTNAME,
                port=port,
                superuser=SUPERUSER,
                superuser_password=password,
                ca_file=ca_file,
                socket_dir=base,
                log_file=log,
            )
        finally:
            server.send_signal(signal.SIGQUIT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def _server_process() -> None:
    """In the child before exec: die with the parent; drop root (postgres refuses it)."""
    if os.geteuid() == 0:
        account = pwd.getpwnam(SUPERUSER)
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
    # After setuid, which clears the parent-death signal.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGQUIT)


def _wait_ready(server: subprocess.Popen[bytes], socket_dir: Path, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        if (socket_dir / f".s.PGSQL.{port}").exists() and "ready to accept connections" in (
            log.read_text(encoding="utf-8", errors="replace")
        ):
            return
        time.sleep(0.1)
    detail = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    server.kill()
    server.wait(timeout=10)
    raise RuntimeError(f"throwaway PostgreSQL did not start: {detail[-2000:]}")
