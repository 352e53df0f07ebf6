"""Rich progress bars that show examples/s; silent when not on a terminal or when disabled."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

console = Console(stderr=True)


class RateColumn(ProgressColumn):
    def __init__(self, unit: str = "ex") -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} {self.unit}/s" if speed else f"- {self.unit}/s", style="cyan")


def progress_enabled() -> bool:
    if os.environ.get("ROBENCH_PROGRESS", "").lower() in {"0", "false", "off"}:
        return False
    return sys.stderr.isatty() or os.environ.get("ROBENCH_PROGRESS", "").lower() in {"1", "true", "on"}


class _Bar:
    def __init__(self, progress: Progress | None, task_id) -> None:
        self.progress, self.task_id = progress, task_id
        self.start = time.perf_counter()
        self.done = 0

    def advance(self, n: int = 1, **fields) -> None:
        self.done += n
        if self.progress is not None:
            self.progress.update(self.task_id, advance=n, **fields)

    def update(self, **fields) -> None:
        if self.progress is not None:
            self.progress.update(self.task_id, **fields)


@contextmanager
def progress_bar(description: str, total: int | None, unit: str = "ex", extra: str = ""):
    if not progress_enabled():
        yield _Bar(None, None)
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
               TimeElapsedColumn()]
    if extra:
        columns.append(TextColumn(extra))
    with Progress(*columns, console=console, transient=False) as progress:
        task_id = progress.add_task(description, total=total, info="")
        yield _Bar(progress, task_id)
