"""CommitGate: once a load is aborted, no COMMIT of it starts.

A signal (SIGTERM from Meltano, an error in another stream) aborts a load from the main
thread while the stream's worker thread may be about to COMMIT. Without a gate the worker
could commit a table the run has already reported as failed. The worker commits while
holding the gate and only if the load is not aborted; `close` marks the load aborted and
waits briefly for a COMMIT already under way, which then either finishes (the table is
complete and new) or is cancelled by the caller (the table is complete and old).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class LoadAborted(Exception):
    """The load was aborted before its commit started."""


class CommitGate:
    """Serialises a stream's COMMIT against its abort."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    def commit(self, commit: Callable[[], None]) -> None:
        """Run `commit` unless the gate is closed (then raise LoadAborted)."""
        with self._lock:
            if self._closed:
                raise LoadAborted
            commit()

    def close(self, wait_s: float = 0.5) -> None:
        """No COMMIT starts from now on; wait up to `wait_s` for one under way."""
        self._closed = True
        if self._lock.acquire(timeout=wait_s):
            self._lock.release()
