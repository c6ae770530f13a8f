"""Schema review for pull requests: what the new Alembic revisions would do to PostgreSQL.

`python -m scripts.review_migrations --base origin/main` finds the revisions added since BASE,
renders their offline SQL for PostgreSQL (`alembic upgrade <from>:<head> --sql`), lints it with
squawk against the rules kept in `.squawk.toml` (operations that take heavy locks on a live
table: a NOT NULL column without a default, an index built without CONCURRENTLY, a column type
change, a foreign key or constraint validated under lock…) and diffs the ERD. The Markdown report
goes to stdout and, in GitHub Actions, to the job summary; each flagged operation also becomes a
warning annotation. `--strict` exits 1 when anything is flagged.
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from scripts.generate_erd import render

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = Path("api/migrations/versions")
SQUAWK_CONFIG = ROOT / ".squawk.toml"
ERD = Path("docs/erd.md")
# Offline mode never connects: the URL only selects the PostgreSQL dialect.
OFFLINE_URL = "postgresql+psycopg://review@localhost/review"


@dataclass(frozen=True)
class Finding:
    rule: str
    line: int  # 1-based, in the rendered SQL
    message: str
    statement: str


def alembic_config(version_locations: Path | None = None) -> Config:
    config = Config(str(ROOT / "alembic.ini"), output_buffer=io.StringIO())
    config.attributes["database_url"] = OFFLINE_URL
    if version_locations is not None:
        config.set_main_option("version_locations", str(version_locations))
    return config


def added_revisions(config: Config, added_files: Iterable[Path]) -> list[Script]:
    """The revisions defined in ADDED_FILES, oldest first."""
    names = {path.name for path in added_files}
    scripts = ScriptDirectory.from_config(config)
    chain = list(reversed(list(scripts.walk_revisions())))
    return [script for script in chain if Path(script.path).name in names]


def offline_sql(config: Config, revisions: Sequence[Script]) -> str:
    """The SQL that upgrading through REVISIONS runs, as Alembic renders it offline."""
    start = revisions[0].down_revision or "base"
    if not isinstance(start, str):
        raise SystemExit(f"revision {revisions[0].revision} merges branches: review it by hand")
    buffer = config.output_buffer
    assert isinstance(buffer, io.StringIO)
    buffer.seek(0)
    buffer.truncate()
    command.upgrade(config, f"{start}:{revisions[-1].revision}", sql=True)
    return buffer.getvalue()


def lint(sql: str) -> list[Finding]:
    squawk = shutil.which("squawk") or str(Path(sys.executable).with_name("squawk"))
    completed = subprocess.run(  # noqa: S603 - a fixed executable and arguments
        [
            squawk,
            "--config",
            str(SQUAWK_CONFIG),
            "--reporter",
            "json",
            "--stdin-filepath",
            "migration.sql",
        ],
        input=sql,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode not in (0, 1) or not completed.stdout.strip():
        raise RuntimeError(f"squawk failed ({completed.returncode}): {completed.stderr.strip()}")
    lines = sql.splitlines()
    findings = []
    for item in json.loads(completed.stdout):
        # squawk numbers lines from 0.
        first, last = int(item["line"]), int(item.get("line_end", item["line"]))
        statement = "\n".join(lines[first : last + 1]).strip()
        findings.append(Finding(item["rule_name"], first + 1, item["message"], statement))
    return findings


def erd_diff(base: str) -> str:
    shown = subprocess.run(  # noqa: S603 - git with a ref given by the workflow
        ["git", "show", f"{base}:{ERD.as_posix()}"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    before = shown.stdout if shown.returncode == 0 else ""
    diff = difflib.unified_diff(
        before.splitlines(), render().splitlines(), f"{base}:{ERD}", f"HEAD:{ERD}", lineterm=""
    )
    return "\n".join(diff)


def changed_files(base: str) -> list[Path]:
    listed = subprocess.run(  # noqa: S603
        ["git", "diff", "--diff-filter=A", "--name-only", f"{base}...HEAD", "--", str(VERSIONS)],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [Path(line) for line in listed.stdout.splitlines() if line.endswith(".py")]


def report(revisions: Sequence[Script], sql: str, findings: Sequence[Finding], erd: str) -> str:
    names = ", ".join(f"`{script.revision}` ({script.doc})" for script in revisions)
    parts = [f"## Schema review: {names}", ""]
    if findings:
        parts += [
            f"**{len(findings)} operation(s) take heavy locks or are unsafe on a live table.** "
            "Use the expand/contract steps of the schema-change template, or explain in the "
            "pull request why the lock is acceptable (e.g. the table is tiny).",
            "",
            "| rule | line | why |",
            "|---|---|---|",
        ]
        parts += [
            f"| [`{f.rule}`](https://squawkhq.com/docs/{f.rule}) | {f.line} | {f.message} |"
            for f in findings
        ]
    else:
        parts.append("No operation that takes a heavy lock was found.")
    parts += ["", "### Offline SQL", "", "```sql", sql.strip(), "```", "", "### ERD diff", ""]
    parts += ["```diff", erd, "```"] if erd else ["The ERD does not change."]
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="origin/main", help="git ref the branch started from")
    parser.add_argument("--strict", action="store_true", help="exit 1 when anything is flagged")
    args = parser.parse_args(argv)

    config = alembic_config()
    revisions = added_revisions(config, changed_files(args.base))
    if not revisions:
        print("No new migration revisions.")
        return 0
    sql = offline_sql(config, revisions)
    findings = lint(sql)
    markdown = report(revisions, sql, findings, erd_diff(args.base))
    print(markdown)
    if summary := os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(summary, "a", encoding="utf-8") as out:
            out.write(markdown)
    for finding in findings:
        # A workflow command: GitHub shows it as an annotation on the run.
        print(f"::warning title=schema review {finding.rule}::{finding.message}")
    return 1 if findings and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
