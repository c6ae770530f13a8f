"""dependency-scan fetches its advisory database when none is on disk: a zip of OSV JSON served
over HTTP by a local server, checked, cached with its date, its age in the report; stale,
unreachable or malformed sources fail the run and say why."""

from __future__ import annotations

import json
import socket
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flows.__main__ import main
from flows.dependency_scan.database_fetch import AdvisoryFetchError, ensure_database
from tests.flows.advisory_server import age_file, build_osv_zip, serve_directory

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REQUIREMENTS = FIXTURES / "flows" / "requirements-vulnerable.txt"
EXPECTED = {"PYSEC-2023-74", "PYSEC-2023-192", "PYSEC-2023-212", "PYSEC-2022-42969"}


@pytest.fixture(scope="module")
def osv_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("osv")
    build_osv_zip(root / "all.zip")
    age_file(build_osv_zip(root / "stale.zip"), days=30)
    (root / "not-a-zip.zip").write_text("<html>captive portal</html>")
    with zipfile.ZipFile(root / "not-osv.zip", "w") as bundle:
        bundle.writestr("README.md", "# not an advisory")
    with zipfile.ZipFile(root / "no-id.zip", "w") as bundle:
        bundle.writestr("X.json", json.dumps({"summary": "no id"}))
    with serve_directory(root) as url:
        yield url


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/all.zip"


def scan(tmp_path: Path, database: Path, url: str) -> tuple[int, Path]:
    argv = ["--reports-dir", str(tmp_path / "reports"), "dependency-scan", "-r", str(REQUIREMENTS)]
    code = main([*argv, "--advisory-db", str(database), "--advisory-db-url", url])
    reports = sorted((tmp_path / "reports" / "dependency-scan").glob("*/report.json"))
    return code, reports[-1]


def test_a_missing_database_is_fetched_checked_cached_and_its_age_reported(
    osv_server: str,
    tmp_path: Path,
    recording_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = tmp_path / "advisory-database"

    code, report_path = scan(tmp_path, database, f"{osv_server}/all.zip")

    assert code == 1  # the same findings as with the database on disk
    report = json.loads(report_path.read_text())
    assert {finding["id"] for finding in report["findings"]} == EXPECTED
    fetched = report["advisory_database"]
    assert fetched["source"] == f"{osv_server}/all.zip"
    assert fetched["advisories"] == 6
    assert 0 <= fetched["age_days"] < 0.1
    assert "days old" in (report_path.parent / "report.md").read_text()
    # Not a TTY here: progress arrives as log lines, the last one with the total.
    assert "advisory database download: done," in capsys.readouterr().err

    # The next run uses the cached copy: the source may be gone.
    code, report_path = scan(tmp_path, database, closed_port_url())
    assert code == 1
    again = json.loads(report_path.read_text())["advisory_database"]
    assert again["fetched_at"] == fetched["fetched_at"]


def test_a_source_serving_an_old_database_fails_the_run(
    osv_server: str,
    tmp_path: Path,
    recording_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report_path = scan(tmp_path, tmp_path / "db", f"{osv_server}/stale.zip")

    assert code == 2
    error = capsys.readouterr().err
    assert "serves an advisory database published" in error
    assert "30.0 days ago, more than 7" in error
    assert json.loads(report_path.read_text())["succeeded"] is False


def test_an_unreachable_source_without_a_cache_fails_and_says_what_to_do(
    tmp_path: Path, recording_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = scan(tmp_path, tmp_path / "db", closed_port_url())

    assert code == 2
    error = capsys.readouterr().err
    assert "none could be fetched from http://127.0.0.1:" in error
    assert "FLOWS_ADVISORY_DB_URL" in error


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not-a-zip.zip", "not a zip archive"),
        ("not-osv.zip", "README.md is not an OSV JSON document"),
        ("no-id.zip", "X.json is not an OSV document"),
        ("missing.zip", "HTTP 404"),
    ],
)
def test_what_is_not_a_zip_of_osv_json_is_refused(
    osv_server: str, tmp_path: Path, name: str, message: str
) -> None:
    database = tmp_path / "db"
    with pytest.raises(AdvisoryFetchError, match=message):
        ensure_database(database, f"{osv_server}/{name}", max_age_days=7)
    assert not database.exists()  # nothing half-unpacked is left to be mistaken for a database


def test_an_expired_cache_is_refreshed_and_fails_clearly_when_it_cannot_be(
    osv_server: str, tmp_path: Path
) -> None:
    database = tmp_path / "db"
    first = ensure_database(database, f"{osv_server}/all.zip", max_age_days=7)
    assert ensure_database(database, closed_port_url(), max_age_days=7) == first  # the cache
    # Thirty days later, as far as the cache knows.
    info_path = database / "database.json"
    info = json.loads(info_path.read_text())
    info["published_at"] = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    info_path.write_text(json.dumps(info))

    with pytest.raises(AdvisoryFetchError, match=r"\(more than 7\) and could not be refreshed"):
        ensure_database(database, closed_port_url(), max_age_days=7)
    refreshed = ensure_database(database, f"{osv_server}/all.zip", max_age_days=7)

    assert first.fetched_at is not None
    assert refreshed.fetched_at is not None
    assert refreshed.fetched_at > first.fetched_at
    assert (refreshed.age_days(datetime.now(UTC)) or 0) < 0.1


def test_a_silent_server_times_out(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/all.zip"
    try:
        with pytest.raises(AdvisoryFetchError, match="timed out"):
            ensure_database(tmp_path / "db", url, max_age_days=7, timeout=0.5)
    finally:
        for connection in accepted:
            connection.close()
        listener.close()


def test_credentials_in_a_mirror_url_never_reach_the_report_or_the_log(
    osv_server: str,
    tmp_path: Path,
    recording_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = osv_server.replace("http://", "http://reader:s3cret-token@") + "/all.zip?sig=s3cret-sig"

    code, report_path = scan(tmp_path, tmp_path / "db", url)

    assert code == 1
    captured = capsys.readouterr()
    for text in (report_path.read_text(), captured.out, captured.err):
        assert "s3cret" not in text
    database_json = (tmp_path / "db" / "database.json").read_text()
    assert "s3cret" not in database_json
