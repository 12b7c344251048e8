"""Progress lines while loading, and the per-stream summary table at the end (on stderr)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

logger = logging.getLogger("target-warehouse-raw")


class Progressing(Protocol):
    """What the reporter needs from a stream loader."""

    stream: str
    table_sql: str
    records: int
    rows: int
    started: float
    finished: float | None
    status: str


class ProgressReporter:
    """Logs rows and rows/s per stream at most every `interval` seconds."""

    def __init__(self, interval: float, loaders: Callable[[], Iterable[Progressing]]) -> None:
        self.interval = interval
        self.loaders = loaders
        self.last = time.monotonic()

    def maybe_report(self) -> None:
        """Cheap to call often: only logs when the interval has passed."""
        now = time.monotonic()
        if self.interval <= 0 or now - self.last < self.interval:
            return
        self.last = now
        for loader in self.loaders():
            if loader.finished is not None:
                continue
            seconds = max(now - loader.started, 1e-9)
            logger.info(
                "Progress: stream '%s': %d records received, %d rows loaded, %.0f records/s",
                loader.stream,
                loader.records,
                loader.rows,
                loader.records / seconds,
            )


def summary_lines(loaders: Iterable[Progressing]) -> list[str]:
    """A fixed-width table: stream, table, rows, seconds, rows/s, result."""
    rows = [("stream", "table", "rows", "seconds", "rows/s", "result")]
    now = time.monotonic()
    for loader in loaders:
        seconds = (loader.finished or now) - loader.started
        rate = loader.rows / seconds if seconds > 0 else 0.0
        rows.append(
            (
                loader.stream,
                loader.table_sql,
                str(loader.rows),
                f"{seconds:.2f}",
                f"{rate:.0f}",
                loader.status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) for row in rows]
