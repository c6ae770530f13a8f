"""OSV's PyPI export as the scan downloads it: a zip of OSV JSON documents, built from the
advisory fixtures and served over HTTP by a local server (with Last-Modified from the file)."""

from __future__ import annotations

import json
import os
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ADVISORIES = FIXTURES / "advisories"


def build_osv_zip(destination: Path) -> Path:
    """The fixtures as OSV's export lays them out: one `<id>.json` per advisory, flat."""
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(ADVISORIES.glob("vulns/*/*.yaml")):
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            bundle.writestr(f"{document['id']}.json", json.dumps(document, default=str))
    return destination


def age_file(path: Path, days: float) -> None:
    """Make the server announce the file as published `days` ago (Last-Modified)."""
    moment = time.time() - days * 86400
    os.utime(path, (moment, moment))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """Serve `directory` on a free loopback port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
