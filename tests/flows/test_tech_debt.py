"""tech-debt on a small git repository made for the test: hotspots, window, markers, dead code,
lint counts and the trend against the previous report."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.__main__ import main
from flows.tech_debt.analysis import RepositoryError, churn
from flows.tech_debt.pipeline import run_tech_debt

BRANCHY = """
def decide(a, b, c):
    if a:
        return 1
    elif b:
        return 2
    for item in c:
        if item and a or b:
            return 3
    while a:
        a -= 1
    return 4
"""


def git(repo: Path, *arguments: str, days_ago: int = 0) -> None:
    environment = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    if days_ago:
        moment = datetime.now(UTC) - timedelta(days=days_ago)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S+0000")
        environment["GIT_AUTHOR_DATE"] = environment["GIT_COMMITTER_DATE"] = stamp
    subprocess.run(
        ["git", "-C", str(repo), *arguments], check=True, env=environment, capture_output=True
    )


def commit(repo: Path, files: dict[str, str], message: str, days_ago: int = 0) -> None:
    for name, content in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, days_ago=days_ago)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    # Long ago: outside a 90-day window.
    commit(repo, {"legacy.py": BRANCHY * 3 + "\n"}, "old complex code", days_ago=400)
    commit(repo, {"pkg/hot.py": BRANCHY}, "hot v1")
    commit(repo, {"pkg/hot.py": BRANCHY + "\n# TODO: split decide()\n"}, "hot v2")
    commit(repo, {"pkg/hot.py": BRANCHY + "\n# TODO: split decide()\n# FIXME: naming\n"}, "v3")
    commit(repo, {"simple.py": "import os\n\nVALUE = 1\n"}, "simple")
    commit(repo, {"simple.py": "import os\n\nVALUE = 2  # HACK: magic\n"}, "simple again")
    registered = "@functools.cache\ndef registered_by_its_decorator():\n    return 1\n"
    dead = f"import functools\n\n\ndef never_called():\n    return 42\n\n\n{registered}"
    commit(repo, {"pkg/unused.py": dead}, "dead")
    git(repo, "mv", "pkg/unused.py", "pkg/orphan.py")
    git(repo, "commit", "-q", "-m", "rename")
    return repo


def test_hotspots_rank_frequent_changes_times_complexity(repo: Path, tmp_path: Path) -> None:
    outcome = run_tech_debt(repo=repo, since_days=90, reports_dir=tmp_path / "reports")

    report = json.loads(outcome.report_path.read_text())
    files = [h["file"] for h in report["hotspots"]]
    assert files[0] == "pkg/hot.py"
    top = report["hotspots"][0]
    assert top["commits"] == 3
    assert top["worst_function"] == "decide"
    assert top["score"] == top["commits"] * top["complexity"]
    assert "legacy.py" not in files  # complex, but unchanged within the window
    assert report["trend"] is None  # first report for this repository


def test_churn_follows_renames_and_the_window(repo: Path) -> None:
    changes = churn(repo, since_days=90)

    assert changes["pkg/orphan.py"].commits == 1  # the rename, under the new name
    assert "legacy.py" not in changes
    assert churn(repo, since_days=1000)["legacy.py"].commits == 1


def test_report_lists_markers_dead_code_and_lint(repo: Path, tmp_path: Path) -> None:
    outcome = run_tech_debt(repo=repo, since_days=90, reports_dir=tmp_path)

    report = json.loads(outcome.report_path.read_text())
    assert report["markers"]["by_kind"] == {"TODO": 1, "FIXME": 1, "HACK": 1}
    todo = next(m for m in report["markers"]["items"] if m["kind"] == "TODO")
    assert (todo["file"], todo["text"]) == ("pkg/hot.py", "split decide()")
    dead = {(item["name"], item["kind"]) for item in report["dead_code"]["items"]}
    assert ("never_called", "function") in dead
    # Decorators register what they decorate (routes, fixtures, flows): not reported.
    assert "registered_by_its_decorator" not in {name for name, _ in dead}
    assert report["lint"]["by_code"].get("F401") == 1  # simple.py's unused `import os`
    markdown = (outcome.report_path.parent / "report.md").read_text()
    assert "`pkg/hot.py`" in markdown


def test_second_report_shows_the_trend(repo: Path, tmp_path: Path) -> None:
    run_tech_debt(repo=repo, since_days=90, reports_dir=tmp_path)
    commit(repo, {"pkg/hot.py": BRANCHY + BRANCHY.replace("decide", "decide_more")}, "grow")

    outcome = run_tech_debt(repo=repo, since_days=90, reports_dir=tmp_path)

    trend = json.loads(outcome.report_path.read_text())["trend"]
    assert trend["deltas"]["total_complexity"] > 0
    assert trend["deltas"]["markers"] == -2  # the TODO and FIXME went away
    assert trend["previous_generated_at"]


def test_cli_refuses_a_directory_that_is_not_a_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--reports-dir", str(tmp_path / "r"), "tech-debt", "--repo", str(tmp_path)]) == 2
    assert RepositoryError.__name__ in capsys.readouterr().err
