"""How a batch of COPY rows lands in the live table: straight in, or merged by key.

- `copy_into`: one COPY straight into the live table under a savepoint (the fast way);
- `merge_into`: COPY into a typed TEMP staging table (the input line first), then one
  `INSERT ... SELECT DISTINCT ON (key) ... ORDER BY line DESC ... ON CONFLICT DO UPDATE`:
  the last record per key wins, also within the batch;
- `copy_error`: a server error during either, as a LoadError at the input line (and the
  property) the COPY context names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from target_warehouse_raw.errors import LoadError
from target_warehouse_raw.load.batch import Batch, RowsReader
from target_warehouse_raw.load.statements import (
    copy_sql,
    merge_sql,
    stage_copy_sql,
    stage_ddl,
    stage_name,
)
from target_warehouse_raw.schema.columns import Column
from target_warehouse_raw.warehouse.db import lost_connection, server_message, set_phase

_COPY_CONTEXT = re.compile(r"COPY [^,]*, line (\d+)(?:, column ([^:]+))?")
COPY_CHUNK = 1 << 20


class Landing:
    """Lands one stream's batches in its table, on the stream's connection."""

    def __init__(self, conn: psycopg2.extensions.connection, stream: str, table_sql: str) -> None:
        self.conn = conn
        self.cursor = conn.cursor()
        self.stream = stream
        self.table_sql = table_sql

    def copy_into(self, batch: Batch, columns: Sequence[Column], *, keyed: bool) -> bool:
        """COPY straight in; False (rolled back to the savepoint) when a key repeats and the
        table has one, so the caller merges instead (last record per key wins)."""
        cursor = self.cursor
        set_phase(cursor, self.stream, "insert")
        cursor.execute("SAVEPOINT twr_batch")
        try:
            cursor.copy_expert(
                copy_sql(self.table_sql, columns), RowsReader(batch.rows), size=COPY_CHUNK
            )
        except psycopg2.errors.UniqueViolation as exc:
            cursor.execute("ROLLBACK TO SAVEPOINT twr_batch")
            if not keyed:
                raise self.copy_error(exc, batch, columns) from None
            return False
        except psycopg2.Error as exc:
            if not self.conn.closed:
                cursor.execute("ROLLBACK TO SAVEPOINT twr_batch")
            raise self.copy_error(exc, batch, columns) from None
        cursor.execute("RELEASE SAVEPOINT twr_batch")
        return True

    def merge_into(
        self, batch: Batch, columns: Sequence[Column], keys: Sequence[str], fingerprint: str
    ) -> None:
        """COPY into the typed staging table, then INSERT ... ON CONFLICT, last record wins."""
        self.through_stage(
            batch,
            columns,
            fingerprint,
            lambda stage: [merge_sql(self.table_sql, stage, columns, keys)],
        )

    def through_stage(
        self,
        batch: Batch,
        columns: Sequence[Column],
        fingerprint: str,
        statements: Callable[[str], list[str]],
    ) -> None:
        """COPY the batch into the typed staging table (each row after its input line), then
        run the statements made for that staging table, all under one savepoint."""
        cursor = self.cursor
        stage = stage_name(fingerprint)
        set_phase(cursor, self.stream, "copy")
        cursor.execute("SAVEPOINT twr_merge")
        try:
            cursor.execute(stage_ddl(stage, self.table_sql, columns))
            cursor.execute(f"TRUNCATE {stage}")
            staged = [
                b"%d\t%s" % (line, row) for line, row in zip(batch.lines, batch.rows, strict=True)
            ]
            cursor.copy_expert(stage_copy_sql(stage, columns), RowsReader(staged), size=COPY_CHUNK)
            del staged
            set_phase(cursor, self.stream, "insert")
            for statement in statements(stage):
                cursor.execute(statement)
            cursor.execute(f"TRUNCATE {stage}")
        except psycopg2.Error as exc:
            if not self.conn.closed:
                cursor.execute("ROLLBACK TO SAVEPOINT twr_merge")
            raise self.copy_error(exc, batch, columns) from None
        cursor.execute("RELEASE SAVEPOINT twr_merge")

    def copy_error(self, exc: psycopg2.Error, batch: Batch, columns: Sequence[Column]) -> LoadError:
        """The server's error, at the input line (and property) COPY names in its context."""
        if self.conn.closed:
            return lost_connection(exc, self.stream, doing=f"the load of {batch.span()}")
        match = _COPY_CONTEXT.search(getattr(exc.diag, "context", None) or "")
        if match is None:
            return LoadError(f"{server_message(exc)} (in {batch.span()})", stream=self.stream)
        index = int(match.group(1)) - 1
        line = batch.lines[index] if 0 <= index < len(batch.lines) else None
        prop = None
        if match.group(2):
            name = match.group(2).strip()
            prop = next((c.prop or c.name for c in columns if c.name == name), name)
        return LoadError(server_message(exc), stream=self.stream, line=line, column=prop)
