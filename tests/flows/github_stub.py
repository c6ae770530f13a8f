"""The part of GitHub's REST API the tech-debt tracking issue uses (list issues by label, paged
with Link headers; create; edit), served on a free loopback port, recording every call."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PAGE_SIZE = 2  # small, so a few issues already need the Link header's next page


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: Any


@dataclass
class GitHubStub:
    url: str = ""
    repository: str = "acme/shop"
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    # (status, JSON body) answered to every request instead of the API's, when set.
    failure: tuple[int, dict[str, Any]] | None = None

    def add_issue(self, title: str, body: str, labels: list[str], **extra: Any) -> int:
        number = len(self.issues) + 1
        self.issues[number] = {
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "labels": [{"name": name} for name in labels],
            "html_url": f"https://github.com/{self.repository}/issues/{number}",
            **extra,
        }
        return number

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]


def _handler(stub: GitHubStub) -> type[BaseHTTPRequestHandler]:
    issues_path = f"/repos/{stub.repository}/issues"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(
            self, status: int, document: Any, headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> Call:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            call = Call(
                self.command,
                parts.path,
                parse_qs(parts.query),
                self.headers.get("Authorization"),
                json.loads(raw) if raw else None,
            )
            stub.calls.append(call)
            return call

        def _handle(self) -> None:
            call = self._record()
            if stub.failure is not None:
                self._answer(*stub.failure)
            elif self.command == "GET" and call.path == issues_path:
                self._list(call)
            elif self.command == "POST" and call.path == issues_path:
                number = stub.add_issue(call.body["title"], call.body["body"], call.body["labels"])
                self._answer(201, stub.issues[number])
            elif self.command == "PATCH" and call.path.startswith(issues_path + "/"):
                number = int(call.path.rsplit("/", 1)[1])
                if number not in stub.issues:
                    self._answer(404, {"message": "Not Found"})
                    return
                stub.issues[number] |= call.body
                self._answer(200, stub.issues[number])
            else:
                self._answer(404, {"message": "Not Found"})

        def _list(self, call: Call) -> None:
            label = call.query.get("labels", [""])[0]
            state = call.query.get("state", ["open"])[0]
            page = int(call.query.get("page", ["1"])[0])
            matching = [
                issue
                for issue in stub.issues.values()
                if any(item["name"] == label for item in issue["labels"])
                and (state == "all" or issue["state"] == state)
            ]
            start = (page - 1) * PAGE_SIZE
            headers = {}
            if start + PAGE_SIZE < len(matching):
                next_url = f"{stub.url}{issues_path}?labels={label}&state={state}&page={page + 1}"
                headers["Link"] = f'<{next_url}>; rel="next"'
            self._answer(200, matching[start : start + PAGE_SIZE], headers)

        do_GET = do_POST = do_PATCH = _handle

    return Handler


@contextmanager
def github_stub() -> Iterator[GitHubStub]:
    stub = GitHubStub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
