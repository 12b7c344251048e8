"""Read a slot's changes to one table and write them as Singer RECORD and STATE messages.

The server sends whole committed transactions in commit order (pgoutput protocol 1, no
streaming of in-progress transactions; a transaction larger than the source's
`logical_decoding_work_mem` is spilled to disk by the server, not held here). Records are
written as their changes arrive, in batches of at most `fetch_size` changes (and about
BATCH_BYTES of value text), so the tap's memory does not grow with a transaction's size.
STATE follows only whole transactions: its bookmark is the end position of the last
transaction whose records are all written.

A run reads up to `stop_lsn`, the server's flushed WAL position when the run started, and
then ends, even while the source keeps writing.
"""

from __future__ import annotations

import datetime
import logging
import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg2.extensions

from tap_manufacturing.logical import pgoutput
from tap_manufacturing.logical.pgoutput import UNCHANGED, Value
from tap_manufacturing.logical.render import RenderColumn, current_values, render_rows
from tap_manufacturing.output import encode
from tap_manufacturing.types import PgType

logger = logging.getLogger("tap-manufacturing")

BATCH_BYTES = 8 * 1024 * 1024
"""Most bytes of change messages held before they are rendered and written: with the
rendered texts and the output lines, a batch takes a few times this in memory."""


class ChangeOutput(Protocol):
    """What the change reader needs from its stream."""

    name: str

    def write_change_lines(self, data: bytes) -> None: ...

    def write_change_schema(self, columns: Sequence[RenderColumn]) -> None: ...

    def write_bookmark(self, lsn: int, columns: dict[str, str]) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """How a run of the change reader ended."""

    position: int
    """Bookmark written last: every change before it is written."""
    changes: int
    resnapshot: str | None = None
    """Why the table must be read again from a new snapshot (TRUNCATE, a rewritten column),
    or None."""


@dataclass
class _Change:
    kind: str  # "upsert" or "delete"
    values: list[Value]
    lsn: int
    deleted_at: str | None = None


@dataclass
class _Transaction:
    lsn: int = 0
    commit_time: str = ""
    changes: list[_Change] = field(default_factory=list)
    text_bytes: int = 0


def signature(columns: Sequence[RenderColumn]) -> dict[str, str]:
    """Column name -> exact type: what STATE remembers of the table's shape."""
    return {column.name: column.type.exact for column in columns}


class ChangeReader:
    """One run over the slot: decode, render, write; see the module docstring."""

    def __init__(
        self,
        *,
        cursor: Any,
        connection: psycopg2.extensions.connection,
        output: ChangeOutput,
        table_oid: int,
        table_sql: str,
        key: Sequence[str],
        known: dict[str, str],
        excluded: set[str],
        describe: Callable[[int, int], PgType],
        has_default: Callable[[str], bool],
        as_text: Callable[[str], bool],
        start_lsn: int,
        stop_lsn: int,
        batch_rows: int,
        state_interval: int,
        max_wait: float,
        progress_interval: float,
    ) -> None:
        self.cursor = cursor
        self.connection = connection
        self.output = output
        self.ours = table_oid
        self.table_sql = table_sql
        self.key = tuple(key)
        self.known = dict(known)
        self.excluded = excluded
        self.describe = describe
        self.has_default = has_default
        self.as_text = as_text  # does a json/jsonb column travel as its text (json_as_text)?
        self.stop_lsn = stop_lsn
        self.batch_rows = batch_rows
        self.state_interval = state_interval
        self.max_wait = max_wait
        self.progress_interval = progress_interval
        self.next_progress = time.monotonic() + progress_interval
        self.position = start_lsn
        self.written_state = start_lsn
        self.types: dict[tuple[int, int], PgType] = {}
        self.columns: list[RenderColumn] = []
        self.transaction: _Transaction | None = None
        self.changes = 0
        self.since_state = 0
        self.message_size = 0  # bytes of the message being handled: bounds a batch
        self.prefix = b'{"type":"RECORD","stream":' + encode(output.name) + b',"record":'

    # -- the loop -------------------------------------------------------------------

    def run(self) -> Outcome:
        """Read until the stop position (or the bounded wait), writing as it goes."""
        last_activity = time.monotonic()
        seen_end = 0
        while True:
            message = self.cursor.read_message()
            if message is not None:
                last_activity = time.monotonic()
                self.message_size = len(message.payload)
                outcome = self._handle(pgoutput.decode(message.payload))
                if outcome is not None:
                    return outcome
                continue
            if self.transaction is None:
                # Between transactions, the server's reported position (a keepalive's
                # wal_end, the end of what it has decoded) means every transaction that
                # committed before it has already arrived and been written.
                self.position = max(self.position, self.cursor.wal_end)
                if self.position >= self.stop_lsn:
                    return self._finish(None)
                if self.cursor.wal_end != seen_end:
                    seen_end = self.cursor.wal_end
                    last_activity = time.monotonic()
                if time.monotonic() - last_activity > self.max_wait:
                    logger.warning(
                        "Stream '%s': the source sent nothing for %.0f s before reaching the "
                        "run's stop position %s; ending at %s (the next run goes on from there)",
                        self.output.name,
                        self.max_wait,
                        pgoutput.format_lsn(self.stop_lsn),
                        pgoutput.format_lsn(self.position),
                    )
                    return self._finish(None)
            select.select([self.cursor], [], [], 1.0)

    def _handle(self, message: pgoutput.Message) -> Outcome | None:
        if isinstance(message, pgoutput.Begin):
            commit_time = message.commit_time.isoformat()
            self.transaction = _Transaction(message.final_lsn, commit_time)
        elif isinstance(message, pgoutput.Commit):
            self._flush()
            self.transaction = None
            self.position = message.end_lsn
            if self.since_state >= self.state_interval:
                self._write_state()
            if message.end_lsn >= self.stop_lsn:
                return self._finish(None)
        elif isinstance(message, pgoutput.Relation):
            # By OID: the publication follows the table through a rename.
            if message.oid == self.ours:
                return self._relation(message)
        elif isinstance(message, pgoutput.Truncate):
            if self.ours in message.relation_oids:
                self._flush()
                return self._finish("the source table was truncated")
        elif (
            isinstance(message, (pgoutput.Insert, pgoutput.Update, pgoutput.Delete))
            and message.relation_oid == self.ours
        ):
            self._add(message)
        return None

    def _finish(self, resnapshot: str | None) -> Outcome:
        if resnapshot is None and self.position > self.written_state:
            self._write_state()
        return Outcome(self.written_state, self.changes, resnapshot)

    def _write_state(self) -> None:
        self.output.write_bookmark(self.position, self.known)
        self.written_state = self.position
        self.since_state = 0

    # -- table shape ------------------------------------------------------------------

    def _relation(self, relation: pgoutput.Relation) -> Outcome | None:
        """A (new) description of the table: new SCHEMA, or a new snapshot when the
        values of existing rows changed without row changes in the log."""
        columns = [RenderColumn(c.name, self._type(c.type_oid, c.type_modifier),
                                self.as_text(c.name))
                   for c in relation.columns]  # fmt: skip
        shape = signature(columns)
        if shape == self.known and self.columns:
            return None
        self._flush()
        self.columns = columns
        if shape == self.known:
            return None
        rewritten = needs_snapshot(self.known, shape, self.has_default)
        self.known = shape
        self.output.write_change_schema([c for c in columns if c.name not in self.excluded])
        if rewritten:
            return self._finish(rewritten)
        return None

    def _type(self, oid: int, typmod: int) -> PgType:
        if (oid, typmod) not in self.types:
            self.types[oid, typmod] = self.describe(oid, typmod)
        return self.types[oid, typmod]

    # -- changes ----------------------------------------------------------------------

    def _add(self, message: pgoutput.Insert | pgoutput.Update | pgoutput.Delete) -> None:
        transaction = self.transaction
        assert transaction is not None, "a change outside a transaction"
        lsn = transaction.lsn
        if isinstance(message, pgoutput.Delete):
            self._pend(_Change("delete", list(message.old), lsn, transaction.commit_time))
        elif isinstance(message, pgoutput.Insert):
            self._pend(_Change("upsert", list(message.new), lsn))
        else:
            new = list(message.new)
            old = message.old
            if old is not None:
                if message.old_kind == "O":  # REPLICA IDENTITY FULL: the old row is whole
                    new = [o if n is UNCHANGED and isinstance(o, str) else n
                           for n, o in zip(new, old, strict=True)]  # fmt: skip
                key = self._key_indexes()
                if any(old[i] != new[i] for i in key):  # the key changed: the old row goes
                    self._pend(_Change("delete", list(old), lsn, transaction.commit_time))
            self._pend(_Change("upsert", new, lsn))

    def _pend(self, change: _Change) -> None:
        transaction = self.transaction
        assert transaction is not None
        transaction.changes.append(change)
        transaction.text_bytes += self.message_size
        if len(transaction.changes) >= self.batch_rows or transaction.text_bytes >= BATCH_BYTES:
            self._flush()

    def _key_indexes(self) -> list[int]:
        names = [c.name for c in self.columns]
        return [names.index(k) for k in self.key]

    def _flush(self) -> None:
        """Render the pending changes on the server and write their RECORD lines."""
        transaction = self.transaction
        if transaction is None or not transaction.changes:
            return
        changes, transaction.changes, transaction.text_bytes = transaction.changes, [], 0
        selected = [i for i, c in enumerate(self.columns) if c.name not in self.excluded]
        key = set(self._key_indexes())
        rows: list[list[str | None]] = []
        unchanged: dict[int, list[int]] = {}
        for number, change in enumerate(changes):
            row: list[str | None] = []
            for i in selected:
                value = change.values[i]
                if change.kind == "delete" and i not in key:
                    value = None
                if value is UNCHANGED:
                    unchanged.setdefault(number, []).append(i)
                    value = None
                row.append(value if isinstance(value, str) else None)
            rows.append(row)
        columns = [self.columns[i] for i in selected]
        rendered = render_rows(self.connection, columns, rows)
        omitted = self._fill_unchanged(changes, unchanged, selected, rendered)
        names = [encode(c.name) for c in columns]
        lines = []
        for number, (change, values) in enumerate(zip(changes, rendered, strict=True)):
            skip = omitted.get(number, ())
            fields = [
                name + b":" + (b"null" if value is None else value.encode())
                for position, (name, value) in enumerate(zip(names, values, strict=True))
                if position not in skip
            ]
            deleted = b"null" if change.deleted_at is None else encode(change.deleted_at)
            fields.append(b'"_sdc_lsn":%d,"_sdc_deleted_at":' % change.lsn + deleted)
            lines.append(b"{" + b",".join(fields) + b"}")
        extracted = datetime.datetime.now(datetime.timezone.utc).isoformat()
        suffix = b',"time_extracted":"' + extracted.encode() + b'"}\n'
        self.output.write_change_lines(b"".join(self.prefix + line + suffix for line in lines))
        self.changes += len(changes)
        self.since_state += len(changes)
        if time.monotonic() >= self.next_progress:
            logger.info("Progress of stream '%s': %d changes so far", self.output.name,
                        self.changes)  # fmt: skip
            self.next_progress = time.monotonic() + self.progress_interval

    def _fill_unchanged(
        self,
        changes: list[_Change],
        unchanged: dict[int, list[int]],
        selected: list[int],
        rendered: list[list[str | None]],
    ) -> dict[int, set[int]]:
        """Fill TOASTed values an UPDATE did not send from the row as it is now at the
        source; where the row is gone (a later delete follows in the log), the property
        is left out of the record, which tells the target to keep the value it has.
        Returns, per change, the positions to leave out."""
        if not unchanged:
            return {}
        key = self._key_indexes()
        wanted = sorted({i for columns in unchanged.values() for i in columns})
        numbers = sorted(unchanged)
        key_rows = [[changes[n].values[i] for i in key] for n in numbers]
        found = current_values(
            self.connection,
            self.table_sql,
            [self.columns[i] for i in key],
            key_rows,  # type: ignore[arg-type]  # key values are never UNCHANGED
            [self.columns[i] for i in wanted],
        )
        omitted: dict[int, set[int]] = {}
        for position, number in enumerate(numbers):
            current = found.get(position)
            for column in unchanged[number]:
                slot = selected.index(column)
                if current is None:
                    omitted.setdefault(number, set()).add(slot)
                else:
                    rendered[number][slot] = current[wanted.index(column)]
        return omitted


def needs_snapshot(
    before: dict[str, str], after: dict[str, str], has_default: Callable[[str], bool]
) -> str | None:
    """Why a change of the table's columns needs a new snapshot, or None.

    A new column with a default (or a column whose type changed) gives existing rows values
    that never appear in the log as row changes (a fast default, or a table rewrite), so only
    a new read of the table brings them to the warehouse. A new column without a default is
    NULL in every existing row, and a dropped column removes nothing from the rows' other
    values: a new SCHEMA is enough for those.
    """
    for name, exact in after.items():
        if name in before and before[name] != exact:
            return f"column {name!r} changed type from {before[name]} to {exact}"
        if name not in before and has_default(name):
            return f"column {name!r} was added with a default"
    return None
