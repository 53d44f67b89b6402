"""A progress bar with an ETA on stderr, for the CLI's long reads (`backfill`, `replay`)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["BarProgress"]


class BarProgress:
    """`start(total)` then `advance(n)`; drawn live on a terminal, printed once at the end otherwise."""

    def __init__(self, description: str) -> None:
        self._description = description
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> BarProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._bar.stop()

    def start(self, total: int) -> None:
        """Show the bar (not before: a command that fails earlier prints only its error line)."""
        self._bar.start()
        self._task = self._bar.add_task(self._description, total=total)

    def advance(self, count: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, count)
