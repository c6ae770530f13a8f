"""Serve an ASGI app with one uvicorn worker in a subprocess and load it with wrk.

wrk is Debian's `wrk` package (`apt-get install wrk`); results are requests per second and
p99 latency, printed as a table of ratios against the first (baseline) row.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parent.parent
DURATION_SECONDS = int(os.environ.get("BENCH_DURATION", "10"))
# wrk stops with requests still in flight; the server finishes them (32 argon2 logins take
# about a second) before the next load starts, or they would slow whatever runs next.
SETTLE_SECONDS = float(os.environ.get("BENCH_SETTLE", "1"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))


@dataclass(frozen=True)
class Result:
    name: str
    requests_per_second: float
    p99_ms: float
    non_2xx: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def require_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit("wrk is missing: install Debian's package (apt-get install wrk)")
    return wrk


@contextmanager
def serve(
    app: str,
    env: Mapping[str, str] | None = None,
    *,
    factory: bool = False,
    ready_path: str = "/openapi.json",
) -> Iterator[str]:
    """Run `uvicorn <app>` with one worker; yield its base URL once it answers."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", app, "--port", str(port), "--workers", "1",
        "--no-access-log", "--log-level", "warning", "--no-proxy-headers",
    ]  # fmt: skip
    if factory:
        command.append("--factory")
    base_url = f"http://127.0.0.1:{port}"
    # The server's output is kept aside and shown only if it fails to start.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=log
        )
        try:
            _wait_until_ready(process, base_url + ready_path, log)
            yield base_url
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: IO[str]) -> None:
    # Generous: on a loaded machine importing the API alone has taken 17 s.
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the server did not start:\n{log.read()[-4000:]}")
        time.sleep(0.2)


_LUA_TEMPLATE = """
wrk.method = "{method}"
wrk.body = {body}
{headers}
"""


def _lua_script(method: str, body: str | None, headers: Mapping[str, str]) -> str:
    header_lines = "\n".join(f'wrk.headers["{k}"] = [[{v}]]' for k, v in headers.items())
    lua_body = f"[[{body}]]" if body is not None else "nil"
    return _LUA_TEMPLATE.format(method=method, body=lua_body, headers=header_lines)


def _parse_latency_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load(
    name: str,
    url: str,
    *,
    method: str = "GET",
    body: str | None = None,
    headers: Mapping[str, str] | None = None,
    duration: int = DURATION_SECONDS,
    connections: int = CONNECTIONS,
    lua: str = "",
) -> Result:
    """Load `url` with wrk -t1 -c<connections> for `duration` seconds; `lua` is appended to
    wrk's script (a `request` function there varies each request)."""
    wrk = require_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua_script(method, body, headers or {}) + lua)
    try:
        output = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
        time.sleep(SETTLE_SECONDS)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return Result(
        name=name,
        requests_per_second=rps,
        p99_ms=_parse_latency_ms(p99.group(1)) if p99 else float("nan"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def print_table(title: str, results: list[Result]) -> None:
    """Print results with their throughput ratio against the first row."""
    baseline = results[0].requests_per_second
    print(f"\n{title}  (wrk -t1 -c{CONNECTIONS}, {DURATION_SECONDS}s, one uvicorn worker each)")
    print(f"{'case':<44} {'req/s':>10} {'p99 ms':>9} {'x baseline':>11} {'non-2xx':>8}")
    for result in results:
        print(
            f"{result.name:<44} {result.requests_per_second:>10.0f} {result.p99_ms:>9.2f} "
            f"{result.requests_per_second / baseline:>11.2f} {result.non_2xx:>8}"
        )
