"""The schema review a pull request gets when it adds migrations (scripts/review_migrations.py).

Each fixture revision is placed after the project's newest revision in a scratch versions
directory, rendered to offline PostgreSQL SQL by Alembic, and linted with the repository's rules.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from scripts.review_migrations import (
    ROOT,
    VERSIONS,
    added_revisions,
    alembic_config,
    lint,
    offline_sql,
    report,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"

# fixture -> the rules its single operation must trip (a foreign key trips two: it is added
# and validated in one step, under locks on both tables).
FLAGGED = {
    "required_column_revision.py": {"adding-required-field"},
    "blocking_index_revision.py": {"require-concurrent-index-creation"},
    "column_type_revision.py": {"changing-column-type"},
    "foreign_key_revision.py": {"adding-foreign-key-constraint", "constraint-missing-not-valid"},
}


def _project_head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _review(fixture: str, tmp_path: Path) -> tuple[str, list[str]]:
    versions = tmp_path / "versions"
    shutil.copytree(ROOT / VERSIONS, versions, ignore=shutil.ignore_patterns("__pycache__"))
    text = (FIXTURES / fixture).read_text()
    (versions / fixture).write_text(
        text.replace('down_revision = "HEAD"', f'down_revision = "{_project_head()}"')
    )
    config = alembic_config(versions)
    revisions = added_revisions(config, [Path(fixture)])
    assert [script.revision for script in revisions] != []
    sql = offline_sql(config, revisions)
    return sql, [finding.rule for finding in lint(sql)]


def test_a_safe_expansion_is_not_flagged(tmp_path: Path) -> None:
    sql, rules = _review("safe_revision.py", tmp_path)
    assert "CREATE INDEX CONCURRENTLY ix_users_nickname" in sql
    assert rules == []


@pytest.mark.parametrize("fixture", sorted(FLAGGED))
def test_each_locking_operation_is_flagged(fixture: str, tmp_path: Path) -> None:
    _, rules = _review(fixture, tmp_path)
    assert set(rules) == FLAGGED[fixture]


def test_the_report_names_the_rule_and_shows_the_sql(tmp_path: Path) -> None:
    config_dir = tmp_path / "versions"
    sql, _ = _review("required_column_revision.py", tmp_path)
    config = alembic_config(config_dir)
    revisions = added_revisions(config, [Path("required_column_revision.py")])
    findings = lint(sql)
    markdown = report(revisions, sql, findings, erd="")
    assert "adding-required-field" in markdown
    assert "ALTER TABLE users ADD COLUMN nickname VARCHAR(64) NOT NULL" in markdown
    assert "The ERD does not change." in markdown


def test_the_cli_on_a_branch_without_new_revisions_says_so() -> None:
    completed = subprocess.run(
        ["uv", "run", "--no-sync", "python", "-m", "scripts.review_migrations", "--base", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "No new migration revisions." in completed.stdout
