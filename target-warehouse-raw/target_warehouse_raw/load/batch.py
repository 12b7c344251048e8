"""A batch of COPY rows being built or landed, and a file-like view of it for COPY."""

from __future__ import annotations

import datetime as dt
from array import array


def batch_time() -> str:
    """The time a batch is formed, for `_sdc_received_at` / `_sdc_batched_at`."""
    return dt.datetime.now(dt.timezone.utc).isoformat()


class Batch:
    """Buffered COPY rows of one batch and their input line numbers."""

    __slots__ = ("has_version", "keep", "lines", "nbytes", "now", "rows")

    def __init__(self) -> None:
        self.rows: list[bytes] = []
        self.now = batch_time()
        self.lines = array("q")
        self.nbytes = 0
        self.has_version = False
        self.keep: tuple[str, ...] = ()  # columns whose values the rows did not carry

    def __len__(self) -> int:
        return len(self.lines)

    def span(self) -> str:
        """`input lines A-B`, for messages about the whole batch."""
        return f"input lines {self.lines[0]}-{self.lines[-1]}"


class RowsReader:
    """A file-like view of rows for COPY (no joined copy of the whole batch in memory)."""

    def __init__(self, rows: list[bytes]) -> None:
        self._rows = rows
        self._next = 0

    def read(self, size: int = -1) -> bytes:
        """The next rows, about `size` bytes of them (all with -1)."""
        rows, start = self._rows, self._next
        end, total = start, 0
        while end < len(rows) and (size < 0 or total < size):
            total += len(rows[end])
            end += 1
        self._next = end
        return b"".join(rows[start:end])

    def readline(self, size: int = -1) -> bytes:  # pragma: no cover - COPY uses read()
        """One row."""
        if self._next >= len(self._rows):
            return b""
        self._next += 1
        return self._rows[self._next - 1]
