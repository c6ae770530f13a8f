"""The measurements behind the tech-debt report, each a plain function of a git working tree:
churn (git log --numstat), complexity (radon), dead code (vulture), markers, lint (ruff).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from radon.complexity import cc_visit
from vulture import Vulture

# Generated or vendored code is nobody's debt.
EXCLUDED_PARTS = frozenset({".venv", "venv", "node_modules", "__pycache__", "migrations"})
MAX_FILE_BYTES = 1_000_000
MARKER = re.compile(r"\b(TODO|FIXME|HACK|XXX)\b[:\s]?(.*)")
MAX_MARKER_TEXT = 200
GIT_TIMEOUT_SECONDS = 300
# Dead-code false positives: a decorator usually registers what it decorates (routes,
# validators, fixtures, flows, tasks), and these names are read by frameworks, not by code.
FRAMEWORK_NAMES = ["model_config", "pytestmark", "pytest_plugins", "__tablename__"]


class RepositoryError(RuntimeError):
    """The path is not a git working tree, or git failed."""


def _git(repo: Path, *arguments: str) -> str:
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            ["git", "-C", str(repo), *arguments],  # noqa: S607 - git from PATH, as a developer runs it
            capture_output=True,
            text=True,
            check=False,
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except FileNotFoundError as exc:
        raise RepositoryError("git is not installed") from exc
    if completed.returncode != 0:
        raise RepositoryError(f"git {arguments[0]} failed in {repo}: {completed.stderr.strip()}")
    return completed.stdout


def tracked_files(repo: Path) -> list[str]:
    """Files under version control (so .gitignored build output is never measured)."""
    files = _git(repo, "ls-files", "-z").split("\0")
    return sorted(
        name for name in files if name and not EXCLUDED_PARTS.intersection(Path(name).parts)
    )


@dataclass(frozen=True, slots=True)
class Churn:
    commits: int
    lines_changed: int


def _renamed_path(path: str) -> str:
    """numstat writes renames as `dir/{old => new}/file` or `old => new`: keep the new name."""
    braced = re.sub(r"\{[^{}]*? => ([^{}]*)\}", r"\1", path)
    if " => " in braced:
        braced = braced.split(" => ", 1)[1]
    return braced.replace("//", "/")


def churn(repo: Path, since_days: int) -> dict[str, Churn]:
    """Commits touching each file and lines added + deleted, over the last `since_days` days."""
    log = _git(repo, "log", f"--since={since_days}.days", "--numstat", "--format=commit %H")
    commits: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    for line in log.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        added, deleted, path = parts
        name = _renamed_path(path)
        commits[name] += 1
        if added.isdigit() and deleted.isdigit():  # "-" for binary files
            lines[name] += int(added) + int(deleted)
    return {name: Churn(commits[name], lines[name]) for name in commits}


@dataclass(frozen=True, slots=True)
class Complexity:
    total: int  # sum of cyclomatic complexity of every block in the file
    worst: int  # the most complex function or method
    worst_block: str


def complexity(repo: Path, files: list[str]) -> dict[str, Complexity]:
    result: dict[str, Complexity] = {}
    for name in files:
        path = repo / name
        if not name.endswith(".py") or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        try:
            blocks = cc_visit(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # not parseable by this Python: not measurable, not a crash
        # Methods appear inside their class's block and again on their own; count functions.
        functions = [block for block in blocks if block.letter in {"F", "M"}] or blocks
        if not functions:
            result[name] = Complexity(0, 0, "")
            continue
        worst = max(functions, key=lambda block: block.complexity)
        result[name] = Complexity(
            sum(block.complexity for block in functions), worst.complexity, worst.fullname
        )
    return result


@dataclass(frozen=True, slots=True)
class DeadCode:
    file: str
    line: int
    kind: str  # unused function, import, variable, ... or unreachable code
    name: str
    confidence: int


def dead_code(repo: Path, files: list[str], min_confidence: int = 60) -> list[DeadCode]:
    python_files = [str(repo / name) for name in files if name.endswith(".py")]
    if not python_files:
        return []
    scanner = Vulture(ignore_names=FRAMEWORK_NAMES, ignore_decorators=["@*"])
    scanner.scavenge(python_files)
    return [
        DeadCode(
            file=str(Path(item.filename).relative_to(repo)),
            line=item.first_lineno,
            kind=item.typ,
            name=str(item.name),
            confidence=item.confidence,
        )
        for item in scanner.get_unused_code(min_confidence=min_confidence)
    ]


@dataclass(frozen=True, slots=True)
class Marker:
    file: str
    line: int
    kind: str
    text: str


def markers(repo: Path, files: list[str]) -> list[Marker]:
    found: list[Marker] = []
    for name in files:
        path = repo / name
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), start=1):
            match = MARKER.search(line)
            if match:
                found.append(
                    Marker(name, number, match.group(1), match.group(2).strip()[:MAX_MARKER_TEXT])
                )
    return found


def _ruff_command() -> str:
    beside_python = Path(sys.executable).parent / "ruff"
    found = str(beside_python) if beside_python.exists() else shutil.which("ruff")
    if found is None:
        raise RepositoryError("ruff is not installed")
    return found


def lint_counts(repo: Path) -> dict[str, int]:
    """Ruff violations by rule code, under the repository's own ruff configuration."""
    completed = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [_ruff_command(), "check", "--output-format", "json", "--exit-zero", "--no-cache", "."],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
        timeout=GIT_TIMEOUT_SECONDS,
    )
    if completed.returncode != 0:
        raise RepositoryError(f"ruff failed: {completed.stderr.strip()[-1000:]}")
    violations = json.loads(completed.stdout or "[]")
    counts = Counter(str(item.get("code") or "syntax-error") for item in violations)
    return dict(sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])))
