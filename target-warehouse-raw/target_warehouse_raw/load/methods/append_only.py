"""`append-only`: every record inserted, each batch committed at once; no primary key."""

from __future__ import annotations

from target_warehouse_raw.copy_text.encoder import CopyRowEncoder
from target_warehouse_raw.load.batch import Batch
from target_warehouse_raw.load.per_batch import PerBatchLoad


class AppendOnly(PerBatchLoad):
    """Rows added to the table, never changed."""

    name = "append-only"
    result = "appended"
    keyed = False

    def land(self, batch: Batch, encoder: CopyRowEncoder) -> None:
        """COPY straight in."""
        self.copy_or_merge(batch, encoder)
