"""`apply-changes`: a change stream (LOG_BASED) applied in order, deletes included.

A change stream names `_sdc_lsn` as its bookmark property and carries `_sdc_deleted_at`
(docs/value-encoding.md, "Change streams"). The run's changes of the stream are applied in
ONE transaction, in input order, and committed together; STATE follows the commit:

- a batch of changes goes through the staging table: the rows whose last change in the batch
  deletes them are removed (or, with `mark_deleted_rows`, keep their values and get
  `_sdc_deleted_at`), every other key gets its last row (INSERT ... ON CONFLICT DO UPDATE).
  Every record is a full row image or a delete by key, so applying the same changes twice
  gives the same table;
- a record without some property (a TOASTed value its UPDATE did not change, which the tap
  could not fetch) keeps the warehouse's value of that column: such a record lands in a batch
  of its own whose merge leaves those columns alone;
- a snapshot (records with a version; the first run, a full refresh, a TRUNCATE at the
  source) replaces the table's content inside the same transaction: every row is deleted at
  its first record (or at its ACTIVATE_VERSION when it has none), then its rows are loaded.
"""

from __future__ import annotations

import functools
import logging

import msgspec

from target_warehouse_raw.copy_text.encoder import CopyRowEncoder
from target_warehouse_raw.load.batch import Batch
from target_warehouse_raw.load.one_transaction import OneTransactionLoad
from target_warehouse_raw.load.statements import delete_changes_sql, mark_changes_sql, merge_sql
from target_warehouse_raw.schema.columns import DELETED_COLUMN
from target_warehouse_raw.schema.names import quote

logger = logging.getLogger("target-warehouse-raw")

LSN = "_sdc_lsn"
"""The change stream's bookmark property: the position of the change in the source's log."""


def is_change_stream(bookmarks: tuple[str, ...], properties: object) -> bool:
    """The tap's mark of a change stream: bookmark `_sdc_lsn`, a `_sdc_deleted_at` property."""
    return (
        bookmarks == (LSN,) and isinstance(properties, dict) and (DELETED_COLUMN.name in properties)
    )


class ApplyChanges(OneTransactionLoad):
    """Inserts, updates and deletes applied by key, one transaction per run."""

    name = "apply-changes"
    result = "applied"
    phase = "apply"
    needs_keys = True
    tells_absent = True
    incomplete = "table left unchanged"

    @functools.cached_property
    def _cleared(self) -> set[int]:
        """Snapshot versions whose table was emptied in this run (one set per load)."""
        return set()

    # --- records in ------------------------------------------------------------------------

    def _append(self, row: bytes, line: int, version: int | None) -> None:
        """Changes and snapshot rows never share a batch: they land differently."""
        batch = self.batch
        if batch.lines and (version is not None) != batch.has_version:
            self.flush()
        if version is not None and version not in self._cleared:
            self.flush()
            self._clear_for(version)
        super()._append(row, line, version)

    def add_record(
        self,
        line: int,
        raw: bytes,
        version: int | None,
        extracted: str | None,
        file_record: int = 0,
    ) -> None:
        """A record that lacks properties keeps the warehouse's values of those columns."""
        absent = self._absent(raw) if version is None else ()
        if not absent:
            super().add_record(line, raw, version, extracted, file_record)
            return
        record = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
        record.update(dict.fromkeys(absent, msgspec.Raw(b"null")))
        self.flush()  # such a record lands in a batch of its own
        self.batch.keep = tuple(c.name for c in self.table.columns if c.prop in absent)
        super().add_record(line, msgspec.json.encode(record), version, extracted, file_record)
        self.flush()

    def _absent(self, raw: bytes) -> tuple[str, ...]:
        """The properties of this table the record does not carry (the slow path only)."""
        try:
            present = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
        except msgspec.DecodeError:
            return ()  # the encoder names the problem
        return tuple(c.prop for c in self.table.columns if not c.metadata and c.prop not in present)

    # --- snapshots -------------------------------------------------------------------------

    def _clear_for(self, version: int) -> None:
        """A snapshot begins: its rows replace the table's (inside the run's transaction)."""
        self._cleared.add(version)
        if not self.in_transaction:
            self._submit_begin()

        def clear() -> None:
            self.table.cursor.execute(f"DELETE FROM {self.table_sql}")
            logger.info(
                "Stream '%s': snapshot (version %d): %d old row(s) deleted, inside the load",
                self.stream, version, self.table.cursor.rowcount,
            )  # fmt: skip

        self.worker().submit(self.in_worker(clear, doing="the start of a snapshot"))

    def version_announced(self, version: int, line: int) -> None:
        """A snapshot with no rows yet (an empty table, or rows still to come) empties the
        table now; its rows, if any follow, are loaded after."""
        self.flush()
        if version not in self._cleared:
            self._clear_for(version)

    def version_complete(self, version: int, line: int) -> None:
        """The snapshot is complete; the run's changes still commit together at the end."""
        self.flush()

    # --- landing ----------------------------------------------------------------------------

    def land(self, batch: Batch, encoder: CopyRowEncoder) -> None:
        """A snapshot batch goes straight in; changes are applied through the staging table."""
        if batch.has_version:
            self.copy_or_merge(batch, encoder)
            return
        columns = encoder.columns
        keys = self.table.ddl_keys
        deleted = DELETED_COLUMN.name
        mark = self.cfg.mark_deleted_rows

        def statements(stage: str) -> list[str]:
            if mark:
                lsn = [c.name for c in columns if c.name == LSN]
                gone = mark_changes_sql(self.table_sql, stage, keys, deleted, lsn)
            else:
                gone = delete_changes_sql(self.table_sql, stage, keys, deleted)
            upsert = merge_sql(
                self.table_sql, stage, columns, keys, where=f"{quote(deleted)} IS NULL",
                keep=batch.keep,
            )  # fmt: skip
            return [gone, upsert]

        self.landing.through_stage(batch, columns, encoder.fingerprint, statements)
