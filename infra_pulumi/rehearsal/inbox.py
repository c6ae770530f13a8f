"""Local webhook receivers: where the local SNS delivers what would go to Chatbot and e-mail.

SNS posts each notification to an HTTP subscriber as a JSON envelope (`Type`, `TopicArn`,
`Subject`, `Message`, ...); the inbox keeps them by path (`/slack`, `/email`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class Delivery:
    channel: str  # the path it arrived on: "slack" or "email"
    subject: str
    message: str


class Inbox:
    def __init__(self, url: str) -> None:
        self.url = url
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()

    def add(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def wait_for(
        self, wanted: Callable[[Delivery], bool], timeout: float, poke: Callable[[], None]
    ) -> Delivery | None:
        """The first delivery `wanted` accepts, calling `poke` between looks; None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for delivery in self.deliveries():
                if wanted(delivery):
                    return delivery
            poke()
            time.sleep(0.25)
        return None


@contextmanager
def running_inbox() -> Iterator[Inbox]:
    handler_inbox: list[Inbox] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length", "0")), MAX_BODY_BYTES)
            envelope = json.loads(self.rfile.read(length) or b"{}")
            handler_inbox[0].add(
                Delivery(
                    channel=self.path.strip("/"),
                    subject=str(envelope.get("Subject", "")),
                    message=str(envelope.get("Message", "")),
                )
            )
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the rehearsal prints its own summary."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    inbox = Inbox(f"http://127.0.0.1:{server.server_address[1]}")
    handler_inbox.append(inbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield inbox
    finally:
        server.shutdown()
        server.server_close()
