"""A minimal AWS Lambda Runtime API (the part `awslambdaric` speaks), so the function's real
entry point runs locally: it pulls each queued event from `/invocation/next` and posts the
handler's answer to `/invocation/<id>/response` (or `/error`), which this server collects.

Only what the runtime interface client needs: no timeouts, no init errors, no extensions.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


class RuntimeApi:
    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.results: queue.Queue[tuple[str, str, dict[str, Any]]] = queue.Queue()

    def invoke(self, event: dict[str, Any], timeout: float) -> tuple[str, dict[str, Any]]:
        """Queues `event`; returns ("response" | "error", payload) once the function answers."""
        request_id = str(uuid.uuid4())
        self.events.put((request_id, event))
        while True:
            answered, outcome, payload = self.results.get(timeout=timeout)
            if answered == request_id:
                return outcome, payload


def _handler(api: RuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            if self.path != f"{PREFIX}/invocation/next":
                self.send_error(404)
                return
            request_id, event = api.events.get()
            body = json.dumps(event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
            self.send_header("Lambda-Runtime-Deadline-Ms", "9999999999999")
            self.send_header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:eu-west-1:123456789012:function:rehearsal",
            )
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"{}")
            parts = self.path.removeprefix(f"{PREFIX}/").split("/")
            if len(parts) == 3 and parts[0] == "invocation":
                api.results.put((parts[1], parts[2], payload))
            elif parts[:2] == ["init", "error"]:
                api.results.put(("init", "error", payload))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def runtime_api() -> Iterator[tuple[RuntimeApi, str]]:
    """Serves the Runtime API on a free local port: (api, "127.0.0.1:<port>")."""
    api = RuntimeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
