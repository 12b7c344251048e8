"""`upsert`: insert or update by key properties, each batch committed at once.

Each batch is COPied into a typed TEMP staging table, then `INSERT ... SELECT DISTINCT ON
(key) ... ORDER BY line DESC ... ON CONFLICT (key) DO UPDATE`: the last record per key wins.
"""

from __future__ import annotations

from target_warehouse_raw.copy_text.encoder import CopyRowEncoder
from target_warehouse_raw.load.batch import Batch
from target_warehouse_raw.load.per_batch import PerBatchLoad


class Upsert(PerBatchLoad):
    """Rows merged by key into the table."""

    name = "upsert"
    result = "upserted"
    needs_keys = True

    def land(self, batch: Batch, encoder: CopyRowEncoder) -> None:
        """Always through the staging table."""
        self.merge(batch, encoder)
