"""Load methods that commit every batch in its own transaction, in the main thread.

Each batch: advisory lock, history row (first batch), CREATE TABLE if new and schema fit, the
batch, COMMIT. Readers see the table grow batch by batch; a failure keeps what was committed
before it. ACTIVATE_VERSION, once all records of the version are committed, deletes
(`hard_delete`) or marks (`_sdc_deleted_at`) the rows of older versions.
"""

from __future__ import annotations

import logging

from target_warehouse_raw.load.batch import Batch
from target_warehouse_raw.load.stream import StreamLoad
from target_warehouse_raw.schema.columns import DELETED_COLUMN, VERSION_COLUMN
from target_warehouse_raw.schema.names import quote
from target_warehouse_raw.warehouse.db import set_phase

logger = logging.getLogger("target-warehouse-raw")


class PerBatchLoad(StreamLoad):
    """A stream loaded batch by batch, each committed at once."""

    versioned = True
    incomplete = "its last batch is not committed and older versions are kept"

    def begin(self) -> None:
        """A batch's transaction: lock, history row, create or fit the table."""
        self.table.lock()
        self.begin_history()
        set_phase(self.table.cursor, self.stream, "load")
        self.table.create_and_fit(change_keys=True)

    def commit(self, *, final: bool) -> None:
        """Commit in the main thread, and let held STATE go."""
        self.commit_now(final=final, first_line=self.first_line, last_line=self.last_record_line)
        self.ctx.committed()

    def hand_over(self, batch: Batch) -> None:
        """Land the batch now and commit it."""
        self.wait()
        self.begin()
        self.land_batch(batch, self.table.encoder())
        self.commit(final=False)

    def version_complete(self, version: int, line: int) -> None:
        """Rows of older versions go (or are marked) once this one is committed."""
        if self._needs_version_column():
            self._add_version_column()
        self.flush()
        self.wait()
        self.begin()
        cursor = self.table.cursor
        table_sql = self.table_sql
        version_col = quote(VERSION_COLUMN.name)
        if self.cfg.hard_delete:
            statement = f"DELETE FROM {table_sql} WHERE "
        else:
            if not any(c.name == DELETED_COLUMN.name for c in self.table.columns):
                cursor.execute(
                    f"ALTER TABLE {table_sql} ADD COLUMN IF NOT EXISTS "
                    f"{quote(DELETED_COLUMN.name)} timestamp with time zone"
                )
            statement = (
                f"UPDATE {table_sql} SET {quote(DELETED_COLUMN.name)} = now() "
                f"WHERE {quote(DELETED_COLUMN.name)} IS NULL AND "
            )
        cursor.execute(statement + f"({version_col} IS NULL OR {version_col} < %s)", (version,))
        logger.info(
            "Stream '%s': ACTIVATE_VERSION %d: %s %d row(s) of older versions",
            self.stream, version, "deleted" if self.cfg.hard_delete else "soft-deleted",
            cursor.rowcount,
        )  # fmt: skip
        self.commit(final=False)

    def finish_load(self) -> None:
        """Load the last batch, uncommitted (an empty stream still gets its history row)."""
        batch = self.batch
        if batch.has_version and self._needs_version_column():
            self._add_version_column()
        self.wait()
        if batch.lines:
            self.batch = Batch()
            self.begin()
            self.land_batch(batch, self.table.encoder())
        elif self.history_id is None:
            self.begin()

    def finish_commit(self) -> None:
        """Commit the last batch and the history row."""
        self.commit(final=True)
        self.done()
