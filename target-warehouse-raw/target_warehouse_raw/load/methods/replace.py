"""`overwrite`: transactional replace — the stream's table replaced in one transaction.

Advisory lock, CREATE TABLE if new (inside the transaction, so nobody sees it empty), DELETE
of the old rows, every batch COPied straight into the live table, history row, COMMIT.
Readers keep seeing the complete old table until the commit: DELETE takes only a ROW
EXCLUSIVE lock, which does not conflict with SELECT, and MVCC hides the deletion until COMMIT.
The table is never dropped or renamed, so views, grants, comments, indexes, policies and
publications keep working. See the target README, "overwrite: transactional replace".
"""

from __future__ import annotations

import logging
import time

from target_warehouse_raw.copy_text.encoder import CopyRowEncoder
from target_warehouse_raw.load.batch import Batch
from target_warehouse_raw.load.one_transaction import OneTransactionLoad

logger = logging.getLogger("target-warehouse-raw")


class Replace(OneTransactionLoad):
    """The table becomes exactly what this run sent."""

    name = "overwrite"
    result = "replaced"
    phase = "replace"
    incomplete = "table left unchanged"
    replaces_table = True

    def before_rows(self) -> None:
        """DELETE the old rows (invisible to readers until the commit)."""
        started = time.perf_counter()
        self.table.cursor.execute(f"DELETE FROM {self.table_sql}")
        logger.debug(
            "Stream '%s': delete %d old rows %.3f s",
            self.stream, self.table.cursor.rowcount, time.perf_counter() - started,
        )  # fmt: skip

    def land(self, batch: Batch, encoder: CopyRowEncoder) -> None:
        """COPY straight in; a batch that repeats a key is merged (last record wins)."""
        self.copy_or_merge(batch, encoder)

    @property
    def analyzes(self) -> bool:
        """ANALYZE after the commit when asked (analyze_after_load)."""
        return self.cfg.analyze_after_load

    def after_commit(self) -> None:
        """ANALYZE right after the commit, unless the vacuum after the load does it."""
        if self.analyzes and self.cfg.vacuum != "after-load":
            self.table.vacuum(analyze=True, vacuum=False)
