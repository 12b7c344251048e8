"""One stream's load: buffer COPY rows, land them, validate and move them set-based.

Transaction boundaries depend on the load method:
- `overwrite` ("transactional replace"): ONE transaction on the live table for the whole
  stream: advisory lock, DELETE, every batch, history row, COMMIT (see `replace_begin`).
- `upsert` / `append-only`: one transaction per batch, committed at once.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import time
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING

import psycopg2
import psycopg2.errors

from target_warehouse_raw import history
from target_warehouse_raw.db import advisory_key, connect, server_message, set_phase, table_sql
from target_warehouse_raw.errors import LoadError, MissingKeyError
from target_warehouse_raw.names import literal, quote
from target_warehouse_raw.reader import Message, copy_field, has_nul, nul_property, strip_nul
from target_warehouse_raw.schema_sync import changes, create_table_sql, read_shape, run_short_ddl
from target_warehouse_raw.statements import (
    COPY_SQL,
    LANDING,
    LANDING_DDL,
    BatchStatements,
    batch_statements,
    with_where,
)
from target_warehouse_raw.types import DELETED_COLUMN, VERSION_COLUMN, Column

if TYPE_CHECKING:
    from target_warehouse_raw.session import LoadSession

logger = logging.getLogger("target-warehouse-raw")

RESULT = {"overwrite": "replaced", "upsert": "upserted", "append-only": "appended"}
_COPY_LINE = re.compile(r"line (\d+)")


class StreamLoader:
    """Loads one stream into one table."""

    def __init__(
        self,
        session: LoadSession,
        stream: str,
        table: str,
        columns: list[Column],
        keys: list[str],
        line: int,
    ) -> None:
        self.session = session
        self.cfg = session.cfg
        self.method = self.cfg.load_method
        self.stream = stream
        self.table = table
        self.table_sql = table_sql(self.cfg.schema, table)
        self.columns = columns
        self.keys = keys  # column names
        self.lock_key = advisory_key(self.cfg.schema, table)
        self.conn = connect(self.cfg.connection, stream, "prepare")
        self.cursor = self.conn.cursor()
        self._statements: BatchStatements | None = None
        # batch buffer
        self.buffer: list[bytes] = []
        self.buffer_bytes = 0
        self.lines = array("q")
        self.batch_has_version = False
        # progress
        self.started = time.monotonic()
        self.finished: float | None = None
        self.records = 0
        self.rows = 0
        self.first_line: int | None = None
        self.last_record_line = 0
        self.committed_line = 0
        self.status = "running"
        # transaction state
        self.in_replace = False
        self.replaced_once = False
        self.dirty = True  # something to (re)place at EOF
        self.history_id: int | None = None
        self.versions_with_records: set[int] = set()
        self.activations: dict[int, int] = {}
        self._prepare_existing_table(line)

    # --- schema ------------------------------------------------------------------------------

    def _prepare_existing_table(self, line: int) -> None:
        """Schema evolution of an existing table, in its own short transaction, before loading."""
        shape = read_shape(self.cursor, self.table_sql)
        self.conn.commit()
        if shape is None:
            return
        statements = changes(
            shape, self.table_sql, self.columns, self._ddl_keys(), change_keys=False
        )
        run_short_ddl(
            self.conn,
            statements,
            lock_timeout=self.cfg.lock_timeout,
            retries=self.cfg.ddl_retries,
            stream=self.stream,
        )

    def _ddl_keys(self) -> list[str]:
        return [] if self.method == "append-only" else self.keys

    def apply_schema(self, columns: list[Column], keys: list[str], line: int) -> None:
        """A new SCHEMA for a stream that already has one."""
        if columns == self.columns and keys == self.keys:
            return
        self.flush()
        self.columns = columns
        self.keys = keys
        self._statements = None
        self.dirty = True
        if self.in_replace:
            # Mid-load change: the replace transaction already holds the table, so the DDL
            # joins it (readers of an existing table wait from here until the commit).
            shape = read_shape(self.cursor, self.table_sql)
            statements = changes(shape, self.table_sql, columns, self._ddl_keys(), change_keys=True)
            if statements:
                logger.warning(
                    "Stream '%s': schema changed mid-load (input line %d); changing the table "
                    "inside the replace transaction",
                    self.stream,
                    line,
                )
            for statement in statements:
                self.cursor.execute(statement)
        else:
            self._prepare_existing_table(line)

    def _ensure_version_column(self) -> None:
        if self.method == "overwrite" or any(c.name == VERSION_COLUMN.name for c in self.columns):
            return
        self.columns = [*self.columns, VERSION_COLUMN]
        self._statements = None
        self._prepare_existing_table(0)

    def statements(self) -> BatchStatements:
        """Batch statements for the current columns (built once per schema)."""
        if self._statements is None:
            self._statements = batch_statements(
                self.table_sql, self.columns, self._ddl_keys(), self.session.expr_params
            )
        return self._statements

    # --- the hot path ------------------------------------------------------------------------

    def add(self, line: int, message: Message) -> None:
        """Buffer one record as a COPY text row; flush when the batch is full."""
        raw = bytes(message.record)
        if b"\\u0000" in raw and has_nul(raw):
            if not self.cfg.strip_nul_characters:
                raise LoadError(
                    "text contains a NUL character (\\u0000), which PostgreSQL cannot store; "
                    "set strip_nul_characters to remove such characters",
                    stream=self.stream,
                    line=line,
                    column=nul_property(raw),
                )
            raw = strip_nul(raw)
        version = message.version
        if version is None:
            version_field = b"\\N"
        else:
            version_field = str(int(version)).encode()
            self.versions_with_records.add(int(version))
            self.batch_has_version = True
        extracted = message.time_extracted
        extracted_field = b"\\N" if extracted is None else copy_field(extracted.encode())
        row = b"%d\t%s\t%s\t%s\n" % (line, copy_field(raw), version_field, extracted_field)
        self.buffer.append(row)
        self.buffer_bytes += len(row)
        self.lines.append(line)
        self.records += 1
        self.last_record_line = line
        self.dirty = True
        if self.first_line is None:
            self.first_line = line
        if len(self.lines) >= self.cfg.batch_size_rows or (
            self.buffer_bytes >= self.cfg.batch_size_bytes
        ):
            self.flush()

    # --- batches -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Move the buffered batch into the table (committed at once unless replacing)."""
        if not self.lines:
            return
        if self.batch_has_version:
            self._ensure_version_column()
        if self.method == "overwrite":
            if not self.in_replace:
                self.replace_begin()
            self._load_batch()
        else:
            self._batch_begin()
            self._load_batch()
            self._commit(final=False)
        self.session.progress.maybe_report()

    def _lock_table(self) -> None:
        self.cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", (self.lock_key,))
        if not self.cursor.fetchone()[0]:
            logger.info(
                "Stream '%s': another load of %s is running; waiting for it to finish",
                self.stream,
                self.table_sql,
            )
            set_phase(self.cursor, self.stream, "wait-lock")
            self.cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))

    def _history_start(self) -> None:
        if self.history_id is not None:
            return
        control = self.session.control_cursor()
        stale = history.mark_stale_interrupted(
            control, self.cfg.schema, self.table, self.session.run_id
        )
        if stale:
            logger.warning(
                "Stream '%s': %d earlier load(s) of %s never finished; marked interrupted",
                self.stream,
                stale,
                self.table_sql,
            )
        self.history_id = history.start(
            control,
            self.cfg.schema,
            run_id=self.session.run_id,
            stream=self.stream,
            table=self.table,
            load_method=self.method,
            version=self.session.version,
        )

    def _create_and_landing(self) -> None:
        self.cursor.execute(create_table_sql(self.table_sql, self.columns, self._ddl_keys()))
        self.cursor.execute(LANDING_DDL)

    def replace_begin(self) -> None:
        """Transactional replace, step 1: lock, create if new, DELETE (invisible until commit).

        Readers keep seeing the complete old table: DELETE takes only a ROW EXCLUSIVE lock,
        which does not conflict with SELECT, and MVCC hides the deletion until COMMIT.
        """
        set_phase(self.cursor, self.stream, "lock")
        self._lock_table()
        self._history_start()
        set_phase(self.cursor, self.stream, "replace")
        self._create_and_landing()
        shape = read_shape(self.cursor, self.table_sql)
        for statement in changes(
            shape, self.table_sql, self.columns, self._ddl_keys(), change_keys=False
        ):
            self.cursor.execute(statement)  # only when a concurrent run changed the table
        self.cursor.execute(f"DELETE FROM {self.table_sql}")
        for statement in changes(
            shape, self.table_sql, self.columns, self._ddl_keys(), change_keys=True
        ):
            self.cursor.execute(statement)  # key change: after the DELETE, inside the replace
        self.in_replace = True

    def _batch_begin(self) -> None:
        set_phase(self.cursor, self.stream, "lock")
        self._lock_table()
        self._history_start()
        set_phase(self.cursor, self.stream, "load")
        self._create_and_landing()
        shape = read_shape(self.cursor, self.table_sql)
        for statement in changes(
            shape, self.table_sql, self.columns, self._ddl_keys(), change_keys=True
        ):
            self.cursor.execute(statement)

    def _load_batch(self) -> None:
        """COPY into the landing table, validate, INSERT ... SELECT; empties the buffer."""
        statements = self.statements()
        cursor = self.cursor
        set_phase(cursor, self.stream, "copy")
        cursor.execute("SAVEPOINT twr_batch")
        data = io.BytesIO(b"".join(self.buffer))
        self.buffer.clear()
        self.buffer_bytes = 0
        try:
            cursor.copy_expert(COPY_SQL, data, size=1 << 20)
        except psycopg2.Error as exc:
            cursor.execute("ROLLBACK TO SAVEPOINT twr_batch")
            match = _COPY_LINE.search(getattr(exc.diag, "context", None) or "")
            index = int(match.group(1)) - 1 if match else -1
            line = self.lines[index] if 0 <= index < len(self.lines) else None
            raise LoadError(server_message(exc), stream=self.stream, line=line) from None
        del data
        set_phase(cursor, self.stream, "validate")
        cursor.execute(statements.validate)
        bad = cursor.fetchone()
        if bad is not None:
            self._schema_violation(statements, bad[0], bad[1])
        set_phase(cursor, self.stream, "insert")
        cursor.execute("SAVEPOINT twr_insert")
        use_dedupe = self.method == "upsert"
        try:
            cursor.execute(
                with_where(statements.dedupe_insert if use_dedupe else statements.insert)
            )
        except psycopg2.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT twr_insert")
            if statements.dedupe_insert is None:
                raise
            # Duplicate keys in the stream: the last record of each key wins (Singer).
            use_dedupe = True
            try:
                cursor.execute(with_where(statements.dedupe_insert))
            except psycopg2.Error as exc:
                self._insert_failed(statements, exc, use_dedupe)
        except psycopg2.Error as exc:
            self._insert_failed(statements, exc, use_dedupe)
        self.rows += len(self.lines)
        cursor.execute(f"TRUNCATE {LANDING}")
        cursor.execute("RELEASE SAVEPOINT twr_batch")
        self.lines = array("q")
        self.batch_has_version = False

    # --- the error path ----------------------------------------------------------------------

    def _schema_violation(self, statements: BatchStatements, line: int, code: int) -> None:
        check = statements.checks[code]
        problem = check.problem
        if "{actual}" in problem:
            self.cursor.execute(
                f"SELECT jsonb_typeof(rec->{literal(check.prop)}) FROM {LANDING} WHERE line = %s",
                (line,),
            )
            actual = self.cursor.fetchone()[0]
            problem = (
                "null is not allowed by the schema"
                if actual == "null"
                else problem.replace("{actual}", str(actual))
            )
        error = MissingKeyError if check.missing_key else LoadError
        raise error(problem, stream=self.stream, line=line, column=check.prop)

    def _probe(self, statement: str) -> psycopg2.Error | None:
        self.cursor.execute("SAVEPOINT twr_probe")
        try:
            self.cursor.execute(statement)
        except psycopg2.Error as exc:
            return exc
        finally:
            self.cursor.execute("ROLLBACK TO SAVEPOINT twr_probe")
        return None

    def _insert_failed(
        self, statements: BatchStatements, exc: psycopg2.Error, dedupe: bool
    ) -> None:
        """Find the first input line (and column) that makes the INSERT fail; raise about it."""
        self.cursor.execute("ROLLBACK TO SAVEPOINT twr_insert")
        insert = statements.dedupe_insert if dedupe else statements.insert
        lines = sorted(self.lines)
        low, high = 0, len(lines) - 1

        def fails(a: int, b: int) -> psycopg2.Error | None:
            return self._probe(with_where(insert, f"WHERE line BETWEEN {lines[a]} AND {lines[b]}"))

        if fails(low, high) is None:
            raise LoadError(server_message(exc), stream=self.stream, line=lines[0]) from None
        while low < high:
            middle = (low + high) // 2
            if fails(low, middle) is not None:
                high = middle
            else:
                low = middle + 1
        line = lines[low]
        error = fails(low, low) or exc
        for column, expr in statements.exprs:
            column_error = self._probe(f"SELECT {expr} FROM {LANDING} WHERE line = {line}")
            if column_error is not None:
                raise LoadError(
                    server_message(column_error),
                    stream=self.stream,
                    line=line,
                    column=column.prop or column.name,
                ) from None
        raise LoadError(server_message(error), stream=self.stream, line=line) from None

    # --- commit, ACTIVATE_VERSION, end ---------------------------------------------------------

    def _commit(self, *, final: bool) -> None:
        if final and self.history_id is not None:
            history.finish(
                self.cursor,
                self.cfg.schema,
                self.history_id,
                status=RESULT[self.method],
                rows=self.rows,
                first_line=self.first_line,
                last_line=self.last_record_line or None,
            )
        set_phase(self.cursor, self.stream, "commit")
        self.conn.commit()
        self.committed_line = self.last_record_line
        self.session.stream_committed(self)

    def replace_commit(self) -> None:
        """Transactional replace, last step: history row + COMMIT, then ANALYZE."""
        self.flush()
        if not self.in_replace:
            self.replace_begin()
        self._commit(final=True)
        self.in_replace = False
        self.replaced_once = True
        self.dirty = False
        self.status = "replaced"
        self.finished = time.monotonic()
        if self.cfg.analyze_after_load:
            self.conn.autocommit = True
            try:
                set_phase(self.cursor, self.stream, "analyze")
                self.cursor.execute(f"ANALYZE {self.table_sql}")
            finally:
                self.conn.autocommit = False
        self.history_id = None

    def activate_version(self, version: int, line: int) -> None:
        """Honour ACTIVATE_VERSION only once this version's records are all received.

        A leading ACTIVATE_VERSION (before any record of that version) does nothing, so the
        table is never emptied before the new rows arrive.
        """
        seen = self.activations.get(version, 0)
        self.activations[version] = seen + 1
        if version not in self.versions_with_records and seen == 0:
            logger.info(
                "Stream '%s': ACTIVATE_VERSION %d at input line %d precedes its records; "
                "nothing to do yet",
                self.stream, version, line,
            )  # fmt: skip
            return
        if self.method == "overwrite":
            self.replace_commit()
            return
        self._ensure_version_column()
        self.flush()
        self._batch_begin()
        version_col = quote(VERSION_COLUMN.name)
        if self.cfg.hard_delete:
            statement = f"DELETE FROM {self.table_sql} WHERE "
        else:
            if not any(c.name == DELETED_COLUMN.name for c in self.columns):
                self.cursor.execute(
                    f"ALTER TABLE {self.table_sql} ADD COLUMN IF NOT EXISTS "
                    f"{quote(DELETED_COLUMN.name)} timestamp with time zone"
                )
            statement = (
                f"UPDATE {self.table_sql} SET {quote(DELETED_COLUMN.name)} = now() "
                f"WHERE {quote(DELETED_COLUMN.name)} IS NULL AND "
            )
        self.cursor.execute(
            statement + f"({version_col} IS NULL OR {version_col} < %s)", (version,)
        )
        logger.info(
            "Stream '%s': ACTIVATE_VERSION %d: %s %d row(s) of older versions",
            self.stream, version, "deleted" if self.cfg.hard_delete else "soft-deleted",
            self.cursor.rowcount,
        )  # fmt: skip
        self._commit(final=False)

    def finish(self) -> None:
        """End of input: commit whatever this stream still holds."""
        if self.method == "overwrite":
            if self.dirty or not self.replaced_once:
                self.replace_commit()
            return
        self.flush()
        if self.history_id is None:
            self._batch_begin()
        self._commit(final=True)
        self.status = RESULT[self.method]
        self.finished = time.monotonic()

    def abort(self) -> None:
        """Roll back whatever is open and close the connection."""
        with contextlib.suppress(psycopg2.Error):
            self.conn.cancel()
        with contextlib.suppress(psycopg2.Error):
            self.conn.rollback()
        with contextlib.suppress(psycopg2.Error):
            self.conn.close()

    def close(self) -> None:
        """Close the connection after a successful end."""
        self.conn.close()

    @property
    def uncommitted(self) -> bool:
        """True while records received for this stream are not yet committed."""
        return self.last_record_line > self.committed_line

    def column_names(self) -> Sequence[str]:
        """Current column names (for tests and logging)."""
        return [column.name for column in self.columns]
