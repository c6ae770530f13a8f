"""Every link and file reference in the repository points at something in the repository.

Checked: Markdown links and images (with their `#anchor` when it targets a Markdown file), and
repository paths named in Markdown code spans, Python comments and docstrings, and the comments
of the Makefile, shell scripts, TOML and YAML files. Nothing may point outside the repository:
the project's documentation stands on its own.
"""

from __future__ import annotations

import io
import re
import subprocess
import tokenize
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# A repository path: one of the tree's top-level folders, then path characters.
REPO_PATH = re.compile(
    r"(?<![\w./$-])((?:api|flows|infra_pulumi|dashboards|docs|tests|scripts|benchmarks|"
    r"\.github)/[\w./#*<>{}-]*[\w/*>}])"
)
TOP_LEVEL_DOC = re.compile(r"(?<![\w./-])([A-Z]+\.md)\b")
PLACEHOLDER = re.compile(r"[<>*{}$]|\.\.\.|…")
COMMENTED_SUFFIXES = {".toml", ".yml", ".yaml", ".sh", ".cfg", ".ini", ".tmpl"}
COMMENTED_NAMES = {"Makefile", "Dockerfile", "Dockerfile.flows", ".pre-commit-config.yaml"}


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [ROOT / line for line in listed.stdout.splitlines() if (ROOT / line).is_file()]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    headings = re.findall(r"^#+\s+(.+?)\s*#*$", path.read_text(encoding="utf-8"), re.MULTILINE)
    return frozenset(_slug(heading) for heading in headings)


def _missing(source: Path, target: str, base: Path) -> str | None:
    """Why TARGET (relative to BASE) does not resolve, or None when it does."""
    path_part, _, anchor = target.partition("#")
    resolved = (base / path_part).resolve() if path_part else source
    if not resolved.is_relative_to(ROOT):
        return f"{target}: outside the repository"
    # A module may be named without its suffix (`api/openapi_document`).
    if not resolved.exists() and not resolved.with_name(resolved.name + ".py").exists():
        return f"{target}: no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}"
    return None


def _markdown_problems(path: Path, text: str | None = None) -> list[str]:
    text = path.read_text(encoding="utf-8") if text is None else text
    # Fenced code blocks hold commands and examples, not references.
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    problems = []
    for target in MARKDOWN_LINK.findall(prose):
        if re.match(r"^[a-z]+:", target):  # https:, mailto: …
            continue
        problems.append(_missing(path, target, path.parent))
    for span in CODE_SPAN.findall(prose):
        for reference in REPO_PATH.findall(span):
            problems.append(_root_reference(path, reference))
    return [p for p in problems if p]


def _root_reference(source: Path, reference: str) -> str | None:
    if PLACEHOLDER.search(reference):
        return None
    return _missing(source, reference.rstrip("/"), ROOT)


def _python_texts(path: Path) -> list[str]:
    """Comments and docstrings: where Python code names files for its reader."""
    texts, previous = [], tokenize.INDENT
    for token in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
        if token.type == tokenize.COMMENT or (
            token.type == tokenize.STRING
            and previous
            in (
                tokenize.INDENT,
                tokenize.NEWLINE,
                tokenize.NL,
                tokenize.DEDENT,
            )
        ):
            texts.append(token.string)
        if token.type not in (tokenize.COMMENT, tokenize.NL):
            previous = token.type
    return texts


def _comment_texts(path: Path) -> list[str]:
    return [line.split("#", 1)[1] for line in path.read_text().splitlines() if "#" in line]


def _text_problems(path: Path) -> list[str]:
    texts = _python_texts(path) if path.suffix == ".py" else _comment_texts(path)
    problems = []
    for text in texts:
        for reference in REPO_PATH.findall(text):
            problems.append(_root_reference(path, reference))
        for document in TOP_LEVEL_DOC.findall(text):
            problems.append(_missing(path, document, ROOT))
    return [p for p in problems if p]


def test_every_reference_resolves_inside_the_repository() -> None:
    problems = []
    for path in tracked_files():
        relative = path.relative_to(ROOT)
        if relative.parts[0] == "tests" and "fixtures" in relative.parts:
            continue  # third-party data kept as it was published
        if path.suffix == ".md":
            found = _markdown_problems(path)
        elif (
            path.suffix == ".py"
            or path.suffix in COMMENTED_SUFFIXES
            or path.name in COMMENTED_NAMES
        ):
            found = _text_problems(path)
        else:
            continue
        problems += [f"{relative}: {problem}" for problem in found]
    assert problems == [], "\n".join(problems)


def test_a_broken_link_and_a_stale_path_are_caught() -> None:
    page = ROOT / "docs" / "counterexample.md"  # never written: the text is checked as if there
    text = "[gone](nowhere.md) [anchor](api.md#no-such-heading) `api/nowhere.py` [up](../../x.md)"
    problems = _markdown_problems(page, text)
    assert any("nowhere.md: no such file" in p for p in problems)
    assert any("no heading #no-such-heading" in p for p in problems)
    assert any("api/nowhere.py: no such file" in p for p in problems)
    assert any("outside the repository" in p for p in problems)


def test_the_readme_is_a_short_map() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200
