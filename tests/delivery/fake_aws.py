"""A stand-in `aws` executable for the deploy scripts' tests: it answers like the AWS CLI with
text output and records its calls.

Replies are keyed by `<service> <command>`; a key `<service> <command>#<text>` answers instead
when `<text>` appears in the call (two `describe-tasks` asking different questions). "FAIL"
makes the call exit 255.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

FAKE_AWS = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["AWS_CALLS"], "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
replies = json.loads(os.environ["AWS_REPLIES"])
key = " ".join(sys.argv[1:3])
call = " ".join(sys.argv)
specific = [k for k in replies if k.startswith(key + "#") and k.split("#", 1)[1] in call]
reply = replies.get(specific[0] if specific else key, "")
if reply == "FAIL":
    sys.exit(255)
print(reply)
"""


def run_script(
    script: Path, tmp_path: Path, replies: dict[str, str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Run `script` with the fake `aws` first on PATH; returns the result and the calls made."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS, encoding="utf-8")
    aws.chmod(aws.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls.jsonl"
    result = subprocess.run(
        ["bash", str(script)],
        env={
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "AWS_CALLS": str(calls),
            "AWS_REPLIES": json.dumps(replies),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return result, [json.loads(line) for line in lines]


def option(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]
