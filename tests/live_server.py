"""The API as users run it: `uvicorn api.main:app` in a subprocess, configured by environment.

Browser and DAST tests talk to it over real HTTP, so everything between the socket and the
routes (uvicorn's parsing, every middleware, the settings read from the environment) is the
deployed code path.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# Generous: on a loaded shared machine, importing the app from source took 29 s.
START_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    url: str
    log_path: Path
    pid: int

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"uvicorn exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    output = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"uvicorn did not answer /healthz in {START_TIMEOUT_SECONDS}s:\n{output}")


@contextmanager
def serve_api(
    environment: Mapping[str, str],
    log_path: Path,
    uvicorn_arguments: Callable[[int], Sequence[str]] | None = None,
) -> Iterator[LiveServer]:
    """Start the API with `environment` added to this process's and stop it afterwards.

    `--no-proxy-headers` as in the Dockerfile: the app resolves client addresses itself.
    `uvicorn_arguments(port)` replaces the arguments after `uvicorn` (a command under test,
    such as `make run`'s); it must serve on 127.0.0.1 at that port.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    arguments = (
        uvicorn_arguments(port)
        if uvicorn_arguments is not None
        else ["api.main:app", "--host", "127.0.0.1", "--port", str(port), "--no-proxy-headers"]
    )
    command = [sys.executable, "-m", "uvicorn", *arguments]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **environment}, stdout=log, stderr=log
        )
    try:
        _wait_until_healthy(url, process, log_path)
        yield LiveServer(url=url, log_path=log_path, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
