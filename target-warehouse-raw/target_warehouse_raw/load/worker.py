"""A per-stream database worker: runs whole batches while the main thread reads the next one.

The main thread parses and validates input and hands jobs to the worker in input order: the
start of a replace, each full batch, the commit and ANALYZE. At most ONE batch may wait for the
worker (a second hand-over blocks until the worker starts the first), so at most three batches
of a stream exist at a time (being built, waiting, being loaded): memory stays bounded by
`batch_size_bytes`. Anything else that touches the stream's connection (schema changes,
ACTIVATE_VERSION in upsert/append-only, abort) first waits until the worker is idle (`wait`),
so the connection is never used by two threads at once and statements run in input order.

The first error in the worker is kept; later jobs are skipped; the main thread raises it at
its next hand-over or wait. Signals are handled in the main thread only (Python delivers them
there, and the worker blocks them); abort cancels the running statement and stops the worker
before rolling back.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable

logger = logging.getLogger("target-warehouse-raw")

_STOP = object()


class BatchWorker:
    """One thread, one job slot, first error kept."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._batch_slot = threading.Semaphore(1)
        self._idle = threading.Condition()
        self._pending = 0
        self.error: BaseException | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # SIGTERM/SIGINT must reach the main thread: if this thread took one, the main thread
        # could stay blocked reading input and never see it until the input ends.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        while True:
            job, is_batch, release = self._jobs.get()
            if job is _STOP:
                return
            if is_batch:
                self._batch_slot.release()  # the next batch may be handed over
            try:
                if self.error is None and not self._stopped:
                    job()
            except BaseException as exc:  # handed to the main thread
                self.error = exc
            finally:
                if release is not None:
                    release()
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def submit(
        self,
        job: Callable[[], None],
        *,
        batch: bool = False,
        release: Callable[[], None] | None = None,
    ) -> None:
        """Queue a job; raise an earlier job's error first. A batch waits while another
        batch is still waiting for the worker. `release` runs once the job is done or
        dropped (whether it ran or not)."""
        try:
            self.raise_error()
            if batch:
                self._batch_slot.acquire()
                self.raise_error()
        except BaseException:
            if release is not None:
                release()
            raise
        with self._idle:
            self._pending += 1
        self._jobs.put((job, batch, release))

    def wait(self) -> None:
        """Block until every submitted job has run; raise the first error, if any."""
        self.settle()
        self.raise_error()

    def settle(self) -> BaseException | None:
        """Block until idle; return (do not raise) the first error."""
        with self._idle:
            while self._pending:
                self._idle.wait()
        return self.error

    def raise_error(self) -> None:
        """Raise the worker's first error in the calling thread."""
        if self.error is not None:
            raise self.error

    def stop(self, timeout: float | None = None) -> None:
        """Skip queued jobs and end the thread (after the running job returns)."""
        self._stopped = True
        while True:
            try:
                _, _, release = self._jobs.get_nowait()
            except queue.Empty:
                break
            if release is not None:
                release()
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()
        self._jobs.put((_STOP, False, None))
        self._thread.join(timeout)

    def join(self, timeout: float | None) -> None:
        """Wait for the thread to end (after stop)."""
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """True until the thread has ended."""
        return self._thread.is_alive()
