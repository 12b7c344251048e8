"""One stream's load: validate records, buffer COPY rows, land them, move them set-based.

Transaction boundaries depend on the load method:
- `overwrite` ("transactional replace"): ONE transaction on the live table for the whole
  stream: advisory lock, DELETE, every batch, history row, COMMIT (see `replace_begin`).
  Batches are loaded by the stream's worker thread (worker.py) while the main thread reads
  and validates the next batch.
- `upsert` / `append-only`: one transaction per batch, committed at once, in the main thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import msgspec
import psycopg2
import psycopg2.errors

from target_warehouse_raw import history, legacy_names
from target_warehouse_raw.db import advisory_key, connect, server_message, set_phase, table_sql
from target_warehouse_raw.errors import LoadError, MissingKeyError
from target_warehouse_raw.names import quote
from target_warehouse_raw.reader import Message, has_nul, nul_property, strip_nul
from target_warehouse_raw.rows import ConversionError, RowEncoder, batch_time
from target_warehouse_raw.schema_sync import (
    TableShape,
    TypeChangeRefused,
    changes,
    create_table_sql,
    live_types_kept,
    read_shape,
    run_short_ddl,
)
from target_warehouse_raw.statements import (
    copy_sql,
    merge_sql,
    stage_copy_sql,
    stage_ddl,
    stage_name,
)
from target_warehouse_raw.types import DELETED_COLUMN, VERSION_COLUMN, Column, kind_of
from target_warehouse_raw.validate import Violation
from target_warehouse_raw.worker import BatchWorker

if TYPE_CHECKING:
    from target_warehouse_raw.session import LoadSession

logger = logging.getLogger("target-warehouse-raw")

MAX_COLUMNS = 1600  # PostgreSQL's limit per table
RESULT = {"overwrite": "replaced", "upsert": "upserted", "append-only": "appended"}
_COPY_CONTEXT = re.compile(r"COPY [^,]*, line (\d+)(?:, column ([^:]+))?")


class Batch:
    """Buffered COPY rows of one batch and their input line numbers."""

    __slots__ = ("has_version", "lines", "nbytes", "now", "rows")

    def __init__(self) -> None:
        self.rows: list[bytes] = []
        self.now = batch_time()
        self.lines = array("q")
        self.nbytes = 0
        self.has_version = False


class _RowsReader:
    """A file-like view of a batch's rows for COPY (no joined copy of the whole batch)."""

    def __init__(self, rows: list[bytes]) -> None:
        self._rows = rows
        self._next = 0

    def read(self, size: int = -1) -> bytes:
        rows, start = self._rows, self._next
        end, total = start, 0
        while end < len(rows) and (size < 0 or total < size):
            total += len(rows[end])
            end += 1
        self._next = end
        return b"".join(rows[start:end])

    def readline(self, size: int = -1) -> bytes:  # pragma: no cover - COPY uses read()
        if self._next >= len(self._rows):
            return b""
        self._next += 1
        return self._rows[self._next - 1]


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
        bookmarks: Sequence[str] = (),
    ) -> None:
        self.session = session
        self.cfg = session.cfg
        # `auto` is settled by what the stream turns out to be (see settle_method); until
        # then `method` is None, which every use below treats like a keyed load.
        self.method: str | None = None if self.cfg.load_method == "auto" else self.cfg.load_method
        self.bookmarks = tuple(bookmarks)
        self.settled = False  # settle_method has run
        self.stream = stream
        # The stream's name as a RECORD line spells it, for the compiled path; None when JSON
        # would escape it (such lines take the Python path).
        self.stream_json: bytes | None = None
        try:
            if json.dumps(stream, ensure_ascii=False)[1:-1] == stream:
                self.stream_json = stream.encode()
        except UnicodeError:
            pass
        self.table = table
        self.table_sql = table_sql(self.cfg.schema, table)
        self.columns = columns
        self.keys = keys  # column names
        self.lock_key = advisory_key(self.cfg.schema, table)
        self.conn = connect(self.cfg.connection, stream, "prepare")
        self.cursor = self.conn.cursor()
        self._encoder: RowEncoder | None = None
        self.table_types: dict[str, str] = {}  # live column types that differ from the schema
        self._worker: BatchWorker | None = None
        # Closes the race between a signal and a COMMIT the worker is about to send: the
        # worker checks `_aborting` and commits while holding the gate, so once abort has set
        # it, no COMMIT starts (see _commit_now and abort).
        self._commit_gate = threading.Lock()
        self._aborting = False
        # batch buffer
        self.batch = Batch()
        # progress
        self.started = time.monotonic()
        self.finished: float | None = None
        self.records = 0
        self.rows = 0
        self.first_line: int | None = None
        self.last_record_line = 0
        self.batch_file = ""  # the BATCH file being read (for error messages)
        self.committed_line = 0
        self.status = "running"
        # transaction state
        self.in_replace = False
        self.replaced_once = False
        self.dirty = True  # something to (re)place at EOF
        self.history_id: int | None = None
        self.versions_with_records: set[int] = set()
        self.activations: dict[int, int] = {}
        # The version of records received since the last ACTIVATE_VERSION that closed one;
        # at end of input it must have been closed (see check_complete).
        self.open_version: int | None = None
        self.announced: set[int] = set()  # versions whose ACTIVATE_VERSION preceded records
        self.schema_line = line
        if len(columns) > MAX_COLUMNS:
            self._too_many_columns(columns, line)
        self._prepare_existing_table(line)

    # --- schema ------------------------------------------------------------------------------

    def _prepare_existing_table(self, line: int) -> None:
        """Schema evolution of an existing table, in its own short transaction, before loading."""
        run_short_ddl(
            self.conn,
            self._legacy_renames(line),
            lock_timeout=self.cfg.lock_timeout,
            retries=self.cfg.ddl_retries,
            stream=self.stream,
        )
        shape = read_shape(self.cursor, self.table_sql)
        self.conn.commit()
        self._note_types(shape)
        if shape is None:
            return
        statements = self._changes(shape, self.columns, change_keys=False)
        run_short_ddl(
            self.conn,
            statements,
            lock_timeout=self.cfg.lock_timeout,
            retries=self.cfg.ddl_retries,
            stream=self.stream,
        )

    def _legacy_renames(self, line: int) -> list[str]:
        """Renames of a table and columns that earlier versions named (legacy_names.py)."""
        try:
            return legacy_names.renames_for(
                self.cursor, self.cfg.schema, self.stream, self.table, self.columns,
                rename=self.cfg.rename_legacy_names,
            )  # fmt: skip
        except legacy_names.LegacyNamesFound as exc:
            raise LoadError(str(exc), stream=self.stream, line=line) from None

    def _ddl_keys(self) -> list[str]:
        return [] if self.method == "append-only" else self.keys

    def settle_method(
        self, version: int | None, *, line: int | None = None, activated: bool = False
    ) -> None:
        """Choose how this stream loads, at its first record (or ACTIVATE_VERSION, or end).

        A stream is *complete* when the tap says so: its records carry a `version` (the
        Singer full-table convention, closed by ACTIVATE_VERSION), or it sends
        ACTIVATE_VERSION, or its SCHEMA names no bookmark properties (a plain full-table
        stream). Anything else is *partial*: an incremental or resumed extract holds only
        the rows that changed, and replacing the table with it would delete every other row.
        `auto` replaces a complete stream and merges a partial one (upsert by key, or
        append-only without a key); an explicit `overwrite` of a partial stream is refused
        before anything is written.
        """
        self.settled = True
        partial = bool(self.bookmarks) and version is None and not activated
        if self.method is None:
            if not partial:
                self.method = "overwrite"
            else:
                self.method = "upsert" if self.keys else "append-only"
            logger.info(
                "Stream '%s': %s extract, loaded by %s",
                self.stream, "partial (incremental)" if partial else "complete", self.method,
            )  # fmt: skip
        elif self.method == "overwrite" and partial:
            raise LoadError(
                f"load_method 'overwrite' would replace the table with a partial extract "
                f"(the stream is incremental: bookmark properties {list(self.bookmarks)}, "
                f"records without a version), deleting every row this run did not send; "
                f"nothing was loaded. Set load_method to 'auto' or 'upsert' to merge it, or "
                f"reload the whole table with a full refresh (meltano run --full-refresh)",
                stream=self.stream,
                line=line,
            )

    def apply_schema(self, columns: list[Column], keys: list[str], line: int) -> None:
        """A new SCHEMA for a stream that already has one."""
        if columns == self.columns and keys == self.keys:
            return
        if len(columns) > MAX_COLUMNS:
            self._too_many_columns(columns, line)
        self.schema_line = line
        self.flush()
        self.wait()
        self.columns = columns
        self.keys = keys
        self._encoder = None
        self.dirty = True
        if self.in_replace:
            # Mid-load change: the replace transaction already holds the table, so the DDL
            # joins it (readers of an existing table wait from here until the commit).
            for statement in self._legacy_renames(line):
                self.cursor.execute(statement)
            shape = read_shape(self.cursor, self.table_sql)
            self._note_types(shape)
            statements = self._changes(shape, columns, change_keys=True)
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

    def _too_many_columns(self, columns: list[Column], line: int) -> None:
        raise LoadError(
            f"the schema has {len(columns)} columns; PostgreSQL tables can have at most "
            f"{MAX_COLUMNS} columns",
            stream=self.stream,
            line=line,
        )

    # --- database errors ---------------------------------------------------------------------

    def db_error(self, exc: BaseException, line: int | None = None, doing: str = "") -> LoadError:
        """A database error as one clear LoadError naming this stream (no traceback)."""
        if isinstance(exc, LoadError):
            return exc
        if self.conn.closed or isinstance(exc, psycopg2.InterfaceError):
            # The first error of the chain says why (ROLLBACK TO SAVEPOINT on a dead
            # connection only adds "cursor already closed").
            root: BaseException = exc
            while isinstance(root.__context__, psycopg2.Error):
                root = root.__context__
            during = f" during {doing}" if doing else ""
            problem = f"lost the connection to the warehouse{during} ({server_message(root)})"
            if doing == "commit":
                problem += "; the table holds its complete old or complete new content"
            return LoadError(problem, stream=self.stream, line=line)
        return LoadError(server_message(exc), stream=self.stream, line=line)

    @contextlib.contextmanager
    def database_errors(self, line: int | None = None, doing: str = "") -> Iterator[None]:
        """Turn a database error of the main thread's work on this stream into a LoadError."""
        try:
            yield
        except psycopg2.Error as exc:
            raise self.db_error(exc, line, doing) from None

    def in_worker(
        self, job: Callable[[], None], line: int | None = None, doing: str = ""
    ) -> Callable[[], None]:
        """Wrap a worker job: database errors become LoadErrors naming the stream."""

        def run() -> None:
            try:
                job()
            except psycopg2.Error as exc:
                raise self.db_error(exc, line, doing) from None
            except LoadError:
                raise
            except Exception as exc:  # unexpected: keep the traceback, name the stream
                exc.add_note(f"while loading stream '{self.stream}'")
                raise

        return run

    def _needs_version_column(self) -> bool:
        return self.method != "overwrite" and all(
            c.name != VERSION_COLUMN.name for c in self.columns
        )

    def _ensure_version_column(self) -> None:
        if not self._needs_version_column():
            return
        self.wait()
        self.columns = [*self.columns, VERSION_COLUMN]
        self._encoder = None
        self._prepare_existing_table(0)

    def _note_types(self, shape: TableShape | None) -> None:
        """Remember live column types kept although the schema's type differs (see
        type_change: a JSON-Schema-only type that the live column holds)."""
        self.table_types = live_types_kept(shape, self.columns)

    def _changes(
        self, shape: TableShape, columns: Sequence[Column], *, change_keys: bool
    ) -> list[str]:
        """The DDL that makes the live table fit; a refused type change names this stream."""
        try:
            return changes(
                shape, self.table_sql, columns, self._ddl_keys(), change_keys=change_keys
            )
        except TypeChangeRefused as exc:
            raise LoadError(str(exc), stream=self.stream, line=self.schema_line) from None

    def encoder(self) -> RowEncoder:
        """Record -> COPY line for the current columns (built once per schema)."""
        if self._encoder is None:
            columns = []
            for column in self.columns:
                live = self.table_types.get(column.name)
                info = self.session.resolve_type(live) if live else None
                if info is not None:
                    column = dataclasses.replace(column, kind=kind_of(info, {}))
                columns.append(column)
            self._encoder = RowEncoder(columns, self.session.expr_params)
        return self._encoder

    # --- the hot path ------------------------------------------------------------------------

    def add(self, line: int, message: Message) -> None:
        """One RECORD message (see add_record)."""
        self.add_record(line, bytes(message.record), message.version, message.time_extracted)

    def add_record(
        self,
        line: int,
        raw: bytes,
        version: int | None,
        extracted: str | None,
        file_record: int = 0,
    ) -> None:
        """Validate one record, buffer it as a COPY text row; flush when the batch is full.

        `line` is the input line of its RECORD (or BATCH) message; `file_record` the record's
        line in the BATCH file named by `batch_file`, for error messages.
        """
        if b"\\u0000" in raw and has_nul(raw):
            if not self.cfg.strip_nul_characters:
                raise LoadError(
                    self._in_file(
                        "text contains a NUL character (\\u0000), which PostgreSQL cannot "
                        "store; set strip_nul_characters to remove such characters",
                        file_record,
                    ),
                    stream=self.stream,
                    line=line,
                    column=nul_property(raw),
                )
            raw = strip_nul(raw)
        if not self.settled:
            self.settle_method(version, line=line)
        batch = self.batch
        if version is not None and not batch.has_version and self._needs_version_column():
            self.flush()  # rows so far have no version column; later rows have one
            self._ensure_version_column()
            batch = self.batch
        try:
            row = self.encoder().encode(raw, line, version, extracted, batch.now)
        except Violation as exc:
            self.wait()  # an earlier batch's error comes first, as the input order says
            error = MissingKeyError if exc.missing_key else LoadError
            problem = self._in_file(exc.problem, file_record)
            raise error(problem, stream=self.stream, line=line, column=exc.prop) from None
        self._append(row, line, version)

    def add_line(self, line: int, text: bytes) -> bool:
        """A whole RECORD line of this stream in one pass: by the compiled converter where it
        takes the line, else envelope and typed record decoded together, then formatted. Both
        give the same row. Returns False, having changed nothing, for any line that
        needs more (a value the typed decoder refuses, NUL characters, a first versioned
        record that adds the version column); the caller then takes add()'s exact path.
        """
        encoder = self.encoder()
        native = encoder.native
        if native is not None and self.stream_json is not None:
            converted = native.convert(text, self.stream_json)
            if converted is not None:
                row, version = converted
                if not self.settled:
                    self.settle_method(version, line=line)
                if (
                    version is not None
                    and not self.batch.has_version
                    and self._needs_version_column()
                ):
                    return False
                self._append(row, line, version)
                return True
        if b"\\u0000" in text:
            return False
        try:
            message = encoder.decode_line(text)
        except msgspec.DecodeError:  # includes ValidationError
            return False
        version = message.version
        batch = self.batch
        if message.type != "RECORD" or message.stream != self.stream:
            return False
        if not self.settled:
            self.settle_method(version, line=line)
        if version is not None and not batch.has_version and self._needs_version_column():
            return False
        try:
            fmt = encoder.format_plain if b"\\" not in text else encoder.format_escaped
            row = fmt(message.record, line, version, message.time_extracted, batch.now)
        except (KeyError, ConversionError, UnicodeError):
            return False
        self._append(row, line, version)
        return True

    def _append(self, row: bytes, line: int, version: int | None) -> None:
        batch = self.batch
        if version is not None:
            self.versions_with_records.add(int(version))
            self.open_version = int(version)
            batch.has_version = True
        batch.rows.append(row)
        batch.nbytes += len(row)
        batch.lines.append(line)
        self.records += 1
        self.last_record_line = line
        self.dirty = True
        if self.first_line is None:
            self.first_line = line
        if len(batch.lines) >= self.cfg.batch_size_rows or (
            batch.nbytes >= self.cfg.batch_size_bytes
        ):
            self.flush()

    def _in_file(self, problem: str, file_record: int) -> str:
        if not file_record:
            return problem
        return f"BATCH file {self.batch_file}, record {file_record}: {problem}"

    # --- batches -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Move the buffered batch into the table (committed at once unless replacing).

        In a replace the batch goes to the worker thread (loaded while the next one is read);
        otherwise it is loaded and committed here.
        """
        batch = self.batch
        if not batch.lines:
            return
        self.batch = Batch()
        if batch.has_version:
            self._ensure_version_column()
        if self.method == "overwrite":
            if not self.in_replace:
                self._submit_replace_begin()
            encoder = self.encoder()
            budget = self.session.batch_budget
            budget.acquire()  # all streams together: a bounded number of batches handed over
            self.worker().submit(
                self.in_worker(
                    lambda: self._load_batch(batch, encoder),
                    doing=f"the load of input lines {batch.lines[0]}-{batch.lines[-1]}",
                ),
                batch=True,
                release=budget.release,
            )
        else:
            self.wait()
            self._batch_begin()
            self._load_batch(batch, self.encoder())
            self._commit(final=False)
        self.session.progress.maybe_report()
        self.session.stream_committed(self)  # a commit in the worker may release STATE

    def worker(self) -> BatchWorker:
        """The stream's database worker thread (started on first use)."""
        if self._worker is None:
            self._worker = BatchWorker(f"twr-{self.stream}")
        return self._worker

    def wait(self) -> None:
        """Wait until the worker has loaded every batch handed to it; raise its error."""
        if self._worker is not None:
            self._worker.wait()

    def settle(self) -> BaseException | None:
        """Wait until the worker is idle; return (do not raise) its error, if any."""
        return None if self._worker is None else self._worker.settle()

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
            load_method=self.method or self.cfg.load_method,
            version=self.session.version,
        )

    def _create_table(self) -> None:
        self.cursor.execute(create_table_sql(self.table_sql, self.columns, self._ddl_keys()))

    def _submit_replace_begin(self) -> None:
        """Start the replace in the worker: the main thread reads on meanwhile (DELETE...)."""
        self.in_replace = True
        self.worker().submit(self.in_worker(self.replace_begin, self.schema_line, "replace"))

    def replace_begin(self) -> None:
        """Transactional replace, step 1: lock, create if new, DELETE (invisible until commit).

        Readers keep seeing the complete old table: DELETE takes only a ROW EXCLUSIVE lock,
        which does not conflict with SELECT, and MVCC hides the deletion until COMMIT.
        """
        set_phase(self.cursor, self.stream, "lock")
        self._lock_table()
        self._history_start()
        set_phase(self.cursor, self.stream, "replace")
        self._create_table()
        shape = read_shape(self.cursor, self.table_sql)
        for statement in self._changes(shape, self.columns, change_keys=False):
            self.cursor.execute(statement)  # only when a concurrent run changed the table
        started = time.perf_counter()
        self.cursor.execute(f"DELETE FROM {self.table_sql}")
        logger.debug(
            "Stream '%s': delete %d old rows %.3f s",
            self.stream, self.cursor.rowcount, time.perf_counter() - started,
        )  # fmt: skip
        for statement in self._changes(shape, self.columns, change_keys=True):
            self.cursor.execute(statement)  # key change: after the DELETE, inside the replace
        self.in_replace = True

    def _batch_begin(self) -> None:
        set_phase(self.cursor, self.stream, "lock")
        self._lock_table()
        self._history_start()
        set_phase(self.cursor, self.stream, "load")
        self._create_table()
        shape = read_shape(self.cursor, self.table_sql)
        for statement in self._changes(shape, self.columns, change_keys=True):
            self.cursor.execute(statement)

    def _load_batch(self, batch: Batch, encoder: RowEncoder) -> None:
        """COPY the batch's typed rows into the table (or merge them through a staging table).

        overwrite and append-only: COPY straight into the live table under a savepoint; a
        batch that repeats a key (unique violation) is redone through the staging table, last
        record per key winning. upsert: always through the staging table.
        """
        cursor = self.cursor
        started = time.perf_counter()
        columns = encoder.columns
        merged = self.method == "upsert"
        if not merged:
            set_phase(cursor, self.stream, "insert")
            cursor.execute("SAVEPOINT twr_batch")
            try:
                cursor.copy_expert(
                    copy_sql(self.table_sql, columns), _RowsReader(batch.rows), size=1 << 20
                )
            except psycopg2.errors.UniqueViolation as exc:
                cursor.execute("ROLLBACK TO SAVEPOINT twr_batch")
                if not self._ddl_keys():
                    raise self._copy_error(exc, batch, columns) from None
                merged = True  # a key repeats: the last record per key wins
            except psycopg2.Error as exc:
                if not self.conn.closed:
                    cursor.execute("ROLLBACK TO SAVEPOINT twr_batch")
                raise self._copy_error(exc, batch, columns) from None
            cursor.execute("RELEASE SAVEPOINT twr_batch")
        if merged:
            self._merge_batch(batch, encoder)
        self.rows += len(batch.lines)
        batch.rows = []
        logger.debug(
            "Stream '%s': batch of %d rows%s %.3f s",
            self.stream, len(batch.lines), " (merged)" if merged else "",
            time.perf_counter() - started,
        )  # fmt: skip

    def _merge_batch(self, batch: Batch, encoder: RowEncoder) -> None:
        """COPY into the typed staging table, then INSERT ... ON CONFLICT, last record wins."""
        cursor = self.cursor
        columns = encoder.columns
        stage = stage_name(encoder.fingerprint)
        set_phase(cursor, self.stream, "copy")
        cursor.execute("SAVEPOINT twr_merge")
        try:
            cursor.execute(stage_ddl(stage, self.table_sql, columns))
            cursor.execute(f"TRUNCATE {stage}")
            staged = [
                b"%d\t%s" % (line, row) for line, row in zip(batch.lines, batch.rows, strict=True)
            ]
            cursor.copy_expert(stage_copy_sql(stage, columns), _RowsReader(staged), size=1 << 20)
            del staged
            set_phase(cursor, self.stream, "insert")
            cursor.execute(merge_sql(self.table_sql, stage, columns, self._ddl_keys()))
            cursor.execute(f"TRUNCATE {stage}")
        except psycopg2.Error as exc:
            if not self.conn.closed:
                cursor.execute("ROLLBACK TO SAVEPOINT twr_merge")
            raise self._copy_error(exc, batch, columns, staged=True) from None
        cursor.execute("RELEASE SAVEPOINT twr_merge")

    def _copy_error(
        self, exc: psycopg2.Error, batch: Batch, columns: Sequence[Column], *, staged: bool = False
    ) -> LoadError:
        """The server's error, at the input line (and property) COPY names in its context."""
        if self.conn.closed:
            return self.db_error(exc, doing=f"the load of input lines {batch.lines[0]}-"
                                 f"{batch.lines[-1]}")  # fmt: skip
        match = _COPY_CONTEXT.search(getattr(exc.diag, "context", None) or "")
        if match is None:
            first, last = batch.lines[0], batch.lines[-1]
            return LoadError(
                f"{server_message(exc)} (in input lines {first}-{last})", stream=self.stream
            )
        index = int(match.group(1)) - 1
        line = batch.lines[index] if 0 <= index < len(batch.lines) else None
        prop = None
        if match.group(2):
            name = match.group(2).strip()
            prop = next((c.prop or c.name for c in columns if c.name == name), name)
        return LoadError(server_message(exc), stream=self.stream, line=line, column=prop)

    # --- commit, ACTIVATE_VERSION, end ---------------------------------------------------------

    def _commit(self, *, final: bool) -> None:
        """Commit here, in the main thread (upsert/append-only), and release held STATE."""
        self._commit_now(final, self.history_id, self.first_line, self.last_record_line)
        self.session.stream_committed(self)

    def _commit_now(
        self, final: bool, history_id: int | None, first_line: int | None, last_line: int
    ) -> None:
        """History row (final) + COMMIT; the line numbers are those of the records it covers."""
        if final and history_id is not None:
            history.finish(
                self.cursor,
                self.cfg.schema,
                history_id,
                status=RESULT[self.method],
                rows=self.rows,
                first_line=first_line,
                last_line=last_line or None,
            )
        set_phase(self.cursor, self.stream, "commit")
        started = time.perf_counter()
        with self._commit_gate:
            if self._aborting:
                raise LoadError("load aborted before its commit", stream=self.stream)
            self.conn.commit()
        logger.debug("Stream '%s': commit %.3f s", self.stream, time.perf_counter() - started)
        self.committed_line = last_line

    def replace_commit(self) -> None:
        """Transactional replace, last step: history row + COMMIT, then ANALYZE.

        Both run in the worker after the stream's last batch, while the main thread reads on;
        held STATE is released once `committed_line` shows the commit (session polls it).
        """
        self.flush()
        if not self.in_replace:
            self._submit_replace_begin()
        first_line, last_line = self.first_line, self.last_record_line

        def commit() -> None:
            self._commit_now(True, self.history_id, first_line, last_line)
            self.history_id = None
            self.status = "replaced"
            self.finished = time.monotonic()
            if self.cfg.analyze_after_load:
                self._analyze()

        self.worker().submit(self.in_worker(commit, doing="commit"))
        self.in_replace = False
        self.replaced_once = True
        self.dirty = False

    def _analyze(self) -> None:
        self.conn.autocommit = True
        try:
            set_phase(self.cursor, self.stream, "analyze")
            started = time.perf_counter()
            self.cursor.execute(f"ANALYZE {self.table_sql}")
            logger.debug("Stream '%s': analyze %.3f s", self.stream, time.perf_counter() - started)
        finally:
            self.conn.autocommit = False

    def activate_version(self, version: int, line: int) -> None:
        """Honour ACTIVATE_VERSION only once this version's records are all received.

        A leading ACTIVATE_VERSION (before any record of that version) does nothing, so the
        table is never emptied before the new rows arrive.
        """
        if not self.settled:
            self.settle_method(version, line=line, activated=True)
        seen = self.activations.get(version, 0)
        self.activations[version] = seen + 1
        if self.open_version is not None and version >= self.open_version:
            self.open_version = None  # the tap declared the stream complete
        if version not in self.versions_with_records and seen == 0:
            self.announced.add(version)
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
        self.wait()
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

    def check_complete(self) -> None:
        """End of input: refuse a stream whose tap did not finish its version.

        Records carrying version V and no ACTIVATE_VERSION for V after them mean the input
        ended early (the tap died; Meltano may close the pipe before it tells the target).
        A tap that only announces V before its records (as the SDK does) never sends a closing
        ACTIVATE_VERSION: for it, as for streams without versions, end of input is the end.
        """
        if not self.settled:
            self.settle_method(None)
        version = self.open_version
        if version is None or version in self.announced:
            return
        left = (
            "table left unchanged"
            if self.method == "overwrite"
            else "its last batch is not committed and older versions are kept"
        )
        raise LoadError(
            f"input ended before ACTIVATE_VERSION for version {version} — the tap did "
            f"not finish; {left}",
            stream=self.stream,
        )

    def finish_load(self) -> None:
        """End of input, step 1: hand the last batch over (overwrite) or load it, uncommitted."""
        if self.method == "overwrite":
            if self.dirty or not self.replaced_once:
                self.flush()
                if not self.in_replace:
                    self._submit_replace_begin()
            return
        batch = self.batch
        if batch.has_version:
            self._ensure_version_column()
        self.wait()
        if batch.lines:
            self.batch = Batch()
            self._batch_begin()
            self._load_batch(batch, self.encoder())
        elif self.history_id is None:
            self._batch_begin()

    def finish_commit(self) -> None:
        """End of input, step 2 (after every stream's step 1 succeeded): commit."""
        if self.method == "overwrite":
            if self.in_replace:
                self.replace_commit()
            self.wait()
            return
        self._commit(final=True)
        self.status = RESULT[self.method]
        self.finished = time.monotonic()

    def abort(self) -> None:
        """Stop the worker, roll back whatever is open and close the connection.

        A COMMIT that has not started yet never starts; one already under way either finishes
        (the table is complete and new) or is cancelled (the table is complete and old).
        """
        self._aborting = True
        gate_taken = self._commit_gate.acquire(timeout=0.5)
        if gate_taken:
            self._commit_gate.release()
        with contextlib.suppress(psycopg2.Error):
            self.conn.cancel()
        if self._worker is not None:
            self._worker.stop(timeout=0)  # skip queued batches
            deadline = time.monotonic() + 30
            while self._worker.alive and time.monotonic() < deadline:
                with contextlib.suppress(psycopg2.Error):
                    self.conn.cancel()  # the statement running in the worker, if any
                self._worker.join(0.1)
        with contextlib.suppress(psycopg2.Error):
            self.conn.rollback()
        with contextlib.suppress(psycopg2.Error):
            self.conn.close()

    def close(self) -> None:
        """Close the connection after a successful end."""
        if self._worker is not None:
            self._worker.stop()
        self.conn.close()

    @property
    def uncommitted(self) -> bool:
        """True while records received for this stream are not yet committed."""
        return self.last_record_line > self.committed_line

    def column_names(self) -> Sequence[str]:
        """Current column names (for tests and logging)."""
        return [column.name for column in self.columns]
