"""Progress of long transfers: periodic log lines without a terminal, a bar on one."""

from __future__ import annotations

import io

import pytest

from flows.progress import ByteProgress

MIB = 1024 * 1024


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_terminal_it_logs_bytes_share_and_rate_as_it_goes() -> None:
    log = io.StringIO()
    with ByteProgress("restore download", total=4 * MIB, stream=log, interval=0) as progress:
        for _ in range(4):
            progress.advance(MIB)

    lines = log.getvalue().splitlines()
    assert lines[0].startswith("restore download: 1.0 MiB of 4.0 MiB (25%) at ")
    assert lines[2].startswith("restore download: 3.0 MiB of 4.0 MiB (75%) at ")
    assert lines[-1].startswith("restore download: done, 4.0 MiB in ")
    assert lines[-1].endswith("MiB/s)")


def test_lines_come_at_the_interval_not_at_every_chunk() -> None:
    log = io.StringIO()
    with ByteProgress("upload", stream=log, interval=3600) as progress:
        for _ in range(100):
            progress.advance(1024)

    assert log.getvalue().splitlines() == [log.getvalue().splitlines()[-1]]
    assert "upload: done, 0.1 MiB" in log.getvalue()


def test_a_failure_says_how_far_it_got() -> None:
    log = io.StringIO()

    def interrupted_download() -> None:
        with ByteProgress("download", stream=log, interval=3600) as progress:
            progress.advance(2 * MIB)
            raise ConnectionResetError("connection reset")

    with pytest.raises(ConnectionResetError, match="connection reset"):
        interrupted_download()

    assert "download: failed after 2.0 MiB" in log.getvalue()


def test_on_a_terminal_it_draws_a_bar() -> None:
    screen = Terminal()
    with ByteProgress("backup upload", total=2 * MIB, stream=screen, interval=3600) as progress:
        progress.advance(MIB)
        progress.advance(MIB)

    drawn = screen.getvalue()
    assert "backup upload" in drawn
    assert "━" in drawn  # rich's bar
    assert "2.0/2.0 MiB" in drawn
