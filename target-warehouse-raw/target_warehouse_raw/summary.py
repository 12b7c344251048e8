"""Progress lines while loading, the per-stream summary table at the end (on stderr), and
how many records each conversion path took."""

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


class Converted(Protocol):
    """What the path summary needs from a stream load."""

    records: int

    @property
    def python_paths(self) -> tuple[int, int]:
        """Records converted by the typed and by the exact Python path."""
        ...


def path_summary(loads: Iterable[Converted]) -> str:
    """`record paths: N compiled, M typed, K exact`, every stream together.

    Every valid record should take the compiled path where the C converter is built; the
    typed path takes what it hands over, the exact (slow) path what neither takes, and bad
    records, which it names. The benchmark reads this line.
    """
    records = typed = exact = 0
    for load in loads:
        records += load.records
        load_typed, load_exact = load.python_paths
        typed += load_typed
        exact += load_exact
    compiled = max(records - typed - exact, 0)
    return f"record paths: {compiled} compiled, {typed} typed, {exact} exact"
