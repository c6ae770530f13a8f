"""Progress of long transfers (backup upload, restore download, advisory database download), so
whoever watches a 20-minute restore knows it is moving.

On a terminal: a progress bar (rich, which Prefect already brings). Otherwise (a container's
log, CI): a line every `interval` seconds with bytes, share and rate. Under a Prefect flow run
also a progress artifact, updated at the same pace, which the run's page shows.
"""

from __future__ import annotations

import re
import sys
import time
from types import TracebackType
from typing import Any, TextIO

from flows.prefect_support import running_under_prefect

LOG_INTERVAL_SECONDS = 10.0
MIB = 1024 * 1024


def _amount(count: int) -> str:
    return f"{count / MIB:.1f} MiB"


class ByteProgress:
    """Counts bytes as `advance` is called; a context manager that reports until it exits."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        stream: TextIO | None = None,
        interval: float = LOG_INTERVAL_SECONDS,
    ) -> None:
        self.label = label
        self.total = total or None
        self.done = 0
        self._stream = stream or sys.stderr
        self._interval = interval
        self._started = self._last_report = time.monotonic()
        self._bar: Any = None
        self._task: Any = None
        self._artifact_id: Any = None

    def __enter__(self) -> ByteProgress:
        if self._stream.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self._stream),
            )
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total)
        if running_under_prefect():
            from prefect.artifacts import create_progress_artifact

            self._artifact_id = create_progress_artifact(
                0.0, key=_artifact_key(self.label), description=self._describe()
            )
        return self

    def advance(self, count: int) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(self._task, advance=count)
        now = time.monotonic()
        if now - self._last_report >= self._interval:
            self._last_report = now
            self._report()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
        elapsed = max(time.monotonic() - self._started, 1e-9)
        verdict = "failed after" if exc_type is not None else "done,"
        line = f"{self.label}: {verdict} {_amount(self.done)} in {elapsed:.1f} s"
        self._write(f"{line} ({_amount(int(self.done / elapsed))}/s)")
        if self._artifact_id is not None:
            self._update_artifact(100.0 if exc_type is None else self._percent() or 0.0)

    def _percent(self) -> float | None:
        return min(100.0, 100.0 * self.done / self.total) if self.total else None

    def _describe(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        share = self._percent()
        of_total = f" of {_amount(self.total)} ({share:.0f}%)" if self.total else ""
        rate = _amount(int(self.done / elapsed))
        return f"{self.label}: {_amount(self.done)}{of_total} at {rate}/s"

    def _report(self) -> None:
        if self._bar is None:
            self._write(self._describe())
        if self._artifact_id is not None:
            self._update_artifact(self._percent() or 0.0)

    def _update_artifact(self, percent: float) -> None:
        from prefect.artifacts import update_progress_artifact

        update_progress_artifact(self._artifact_id, percent, description=self._describe())

    def _write(self, line: str) -> None:
        print(line, file=self._stream, flush=True)


def _artifact_key(label: str) -> str:
    # Artifact keys allow lowercase letters, digits and dashes only.
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + "-progress"
