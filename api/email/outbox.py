"""The development transport: each message becomes an .eml file in a directory.

Files are private to their owner (links in them are live credentials) and appear whole: they
are written under a temporary name and renamed into place.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from api.email.transport import PermanentEmailError

logger = logging.getLogger("api.email")


class OutboxTransport:
    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _write(self, message: EmailMessage) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".eml-")
        try:
            with os.fdopen(descriptor, "wb") as handle:  # mkstemp creates files with mode 0600
                handle.write(message.as_bytes())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    async def send(self, message: EmailMessage) -> None:
        try:
            path = await asyncio.to_thread(self._write, message)
        except OSError as exc:
            raise PermanentEmailError(f"cannot write to the outbox: {exc.strerror}") from None
        logger.info("email written to the outbox", extra={"path": str(path)})
