"""Load methods whose whole stream is ONE transaction, run by the stream's worker thread.

begin (advisory lock, history row, CREATE TABLE if new, `before_rows`), every batch, the
history row's result and COMMIT run in the worker, in input order, on the stream's one
connection, while the main thread reads and validates the next batch. At most one batch
waits per worker and at most two are handed over across all streams (the run's batch
budget), so memory stays flat. The transaction commits when the tap declares the stream
complete (its closing ACTIVATE_VERSION) or at the end of input.
"""

from __future__ import annotations

from target_warehouse_raw.load.batch import Batch
from target_warehouse_raw.load.stream import StreamLoad
from target_warehouse_raw.warehouse.db import set_phase


class OneTransactionLoad(StreamLoad):
    """A stream loaded in one transaction: readers see the old table until its commit."""

    phase = "load"
    """What pg_stat_activity shows while the transaction begins."""

    committed_once = False

    def before_rows(self) -> None:
        """Inside the transaction, after the table exists and before any batch lands."""

    def before_commit(self) -> None:
        """In the worker, after the last batch, before the history row and COMMIT."""

    def after_commit(self) -> None:
        """In the worker, after the commit (e.g. ANALYZE)."""

    def begin(self) -> None:
        """In the worker: lock, history row, create or fit the table, `before_rows`."""
        self.table.lock()
        self.begin_history()
        set_phase(self.table.cursor, self.stream, self.phase)
        self.table.create_and_fit(change_keys=False)
        self.before_rows()
        self.table.fit(change_keys=True)  # a key change: after before_rows, inside the load
        self.in_transaction = True

    def _submit_begin(self) -> None:
        """Start the transaction in the worker: the main thread reads on meanwhile."""
        self.in_transaction = True
        self.worker().submit(self.in_worker(self.begin, self.table.schema_line, self.phase))

    def hand_over(self, batch: Batch) -> None:
        """The batch goes to the worker (loaded while the next one is read)."""
        if not self.in_transaction:
            self._submit_begin()
        encoder = self.table.encoder()
        budget = self.ctx.batch_budget
        budget.acquire()  # all streams together: a bounded number of batches handed over
        self.worker().submit(
            self.in_worker(
                lambda: self.land_batch(batch, encoder), doing=f"the load of {batch.span()}"
            ),
            batch=True,
            release=budget.release,
        )

    def commit_transaction(self) -> None:
        """History row + COMMIT, then `after_commit`, in the worker after the last batch;
        held STATE is released once `committed_line` shows the commit (the session polls)."""
        self.flush()
        if not self.in_transaction:
            self._submit_begin()
        first_line, last_line = self.first_line, self.last_record_line

        def commit() -> None:
            self.before_commit()
            self.commit_now(final=True, first_line=first_line, last_line=last_line)
            self.history_id = None
            self.done()
            self.after_commit()

        self.worker().submit(self.in_worker(commit, doing="commit"))
        self.in_transaction = False
        self.committed_once = True
        self.dirty = False

    def version_complete(self, version: int, line: int) -> None:
        """The tap declared the stream complete: commit it now."""
        self.commit_transaction()

    def finish_load(self) -> None:
        """Hand the last batch over; an empty stream still gets its transaction."""
        if self.dirty or not self.committed_once:
            self.flush()
            if not self.in_transaction:
                self._submit_begin()

    def finish_commit(self) -> None:
        """Commit what is open, and wait for it."""
        if self.in_transaction:
            self.commit_transaction()
        self.wait()
