"""StreamLoad: what every load method shares — records in, batches built, rows landed, commits.

One StreamLoad per stream, of the class its load method names (load/methods/). The shared
core here takes records (a whole RECORD line on the single-pass path, or a record's JSON),
buffers their COPY rows in batches bounded by rows and bytes, keeps the stream's versions
(ACTIVATE_VERSION), records the load history and commits through a gate that a signal can
close. What differs between methods is how a batch is handed over and landed, when the
transaction begins and commits, and what ACTIVATE_VERSION and the end of input do: two
families implement that (one_transaction.py, per_batch.py), and each method class adds its
own few lines.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import ClassVar

import psycopg2

from target_warehouse_raw.copy_text.encoder import CopyRowEncoder
from target_warehouse_raw.copy_text.validate import Violation
from target_warehouse_raw.errors import LoadError, MissingKeyError
from target_warehouse_raw.load.batch import Batch
from target_warehouse_raw.load.commit_gate import CommitGate, LoadAborted
from target_warehouse_raw.load.context import LoadContext
from target_warehouse_raw.load.landing import Landing
from target_warehouse_raw.load.table import StreamTable
from target_warehouse_raw.load.versions import StreamVersions
from target_warehouse_raw.load.worker import BatchWorker
from target_warehouse_raw.schema.columns import VERSION_COLUMN, Column
from target_warehouse_raw.warehouse import history
from target_warehouse_raw.warehouse.db import server_message, set_phase

logger = logging.getLogger("target-warehouse-raw")


class StreamLoad:
    """Loads one stream into one table (a load method class fills in the abstract parts)."""

    name: ClassVar[str]
    """The `load_method` setting value that selects this class."""
    result: ClassVar[str]
    """The stream's status after a successful load (summary and load history)."""
    keyed: ClassVar[bool] = True
    """The table keeps a primary key on the stream's key properties."""
    versioned: ClassVar[bool] = False
    """Rows carry `_sdc_table_version`: versions are told apart in the table itself."""
    replaces_table: ClassVar[bool] = False
    """The table becomes what this run sent (never right for a partial extract)."""
    needs_keys: ClassVar[bool] = False
    """Refused for a stream without key properties."""
    tells_absent: ClassVar[bool] = False
    """An absent property means something else than null (see StreamTable.every_property)."""
    incomplete: ClassVar[str]
    """What a stream cut short before its closing ACTIVATE_VERSION leaves behind."""

    def __init__(
        self,
        ctx: LoadContext,
        stream: str,
        table: str,
        columns: list[Column],
        keys: list[str],
        line: int,
    ) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.stream = stream
        self.table = StreamTable(
            ctx,
            stream,
            table,
            columns,
            keys,
            keyed=self.keyed,
            line=line,
            every_property=self.tells_absent,
        )
        self.table_sql = self.table.table_sql
        self.landing = Landing(self.table.conn, stream, self.table_sql)
        self._worker: BatchWorker | None = None
        self._commit_gate = CommitGate()  # no COMMIT starts once abort began
        self.batch = Batch()
        # progress (summary.Progressing)
        self.started = time.monotonic()
        self.finished: float | None = None
        self.records = 0
        self.rows = 0
        self.status = "running"
        self.first_line: int | None = None
        self.last_record_line = 0
        self.committed_line = 0
        self.batch_file = ""  # the BATCH file being read (for error messages)
        self.history_id: int | None = None
        self.in_transaction = False  # a transaction spanning batches is open
        self.dirty = True  # something received since the last commit
        self.versions = StreamVersions()
        self.table.prepare()

    # --- what a load method implements ---------------------------------------------------------

    def hand_over(self, batch: Batch) -> None:
        """A full batch leaves the buffer: land it (now or in the worker)."""
        raise NotImplementedError

    def land(self, batch: Batch, encoder: CopyRowEncoder) -> None:
        """Put a batch's rows into the table, inside the open transaction."""
        raise NotImplementedError

    def version_complete(self, version: int, line: int) -> None:
        """ACTIVATE_VERSION for a version whose records all arrived."""
        raise NotImplementedError

    def finish_load(self) -> None:
        """End of input, step 1: the last batch loaded, nothing committed yet."""
        raise NotImplementedError

    def finish_commit(self) -> None:
        """End of input, step 2 (after every stream's step 1 succeeded): commit."""
        raise NotImplementedError

    def version_announced(self, version: int, line: int) -> None:
        """ACTIVATE_VERSION before any record of its version: by default nothing, so that a
        tap that announces a version first never has the table emptied before its rows."""
        logger.info(
            "Stream '%s': ACTIVATE_VERSION %d at input line %d precedes its records; "
            "nothing to do yet",
            self.stream, version, line,
        )  # fmt: skip

    # --- records in --------------------------------------------------------------------------

    def add_line(self, line: int, text: bytes) -> bool:
        """A whole RECORD line of this stream, in one pass. False, having changed nothing,
        for a line that needs the message path (see CopyRowEncoder.line), or whose version
        needs a column the table does not have yet."""
        converted = self.table.encoder().line(text, line, self.batch.now)
        if converted is None:
            return False
        row, version = converted
        if self._lacks_version_column(version):
            return False
        self._append(row, line, version)
        return True

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
        if self._lacks_version_column(version):
            self.flush()  # rows so far have no version column; later rows have one
            self._add_version_column()
        try:
            row = self.table.encoder().record(raw, line, version, extracted, self.batch.now)
        except Violation as exc:
            self.wait()  # an earlier batch's error comes first, as the input order says
            error = MissingKeyError if exc.missing_key else LoadError
            problem = self._in_file(exc.problem, file_record)
            raise error(problem, stream=self.stream, line=line, column=exc.prop) from None
        self._append(row, line, version)

    def _lacks_version_column(self, version: int | None) -> bool:
        """A versioned row that the current batch cannot take yet: this method keeps
        versions, and the table has no version column so far (checked once per batch)."""
        return version is not None and not self.batch.has_version and self._needs_version_column()

    def _needs_version_column(self) -> bool:
        return self.versioned and all(c.name != VERSION_COLUMN.name for c in self.table.columns)

    def _add_version_column(self) -> None:
        self.wait()
        self.table.add_column(VERSION_COLUMN)
        self.table.prepare()

    def _append(self, row: bytes, line: int, version: int | None) -> None:
        batch = self.batch
        if version is not None:
            self.versions.record(int(version))
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

    def apply_schema(self, columns: list[Column], keys: list[str], line: int) -> None:
        """A new SCHEMA for this stream: batches so far land first, then the table changes
        (inside the open transaction if there is one, else in a short one of its own)."""
        if columns == self.table.columns and keys == self.table.keys:
            return
        self.flush()
        self.wait()
        self.table.change_schema(columns, keys, line)
        self.dirty = True
        if self.in_transaction:
            self.table.alter_inside(line)
        else:
            self.table.prepare()

    # --- batches -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Hand the buffered batch over (see hand_over) and start a new one."""
        batch = self.batch
        if not batch.lines:
            return
        self.batch = Batch()
        if batch.has_version and self._needs_version_column():
            self._add_version_column()
        self.hand_over(batch)
        self.ctx.report_progress()
        self.ctx.committed()  # a commit in the worker may release STATE

    def land_batch(self, batch: Batch, encoder: CopyRowEncoder) -> None:
        """Land a batch (see land) and count its rows."""
        started = time.perf_counter()
        self.land(batch, encoder)
        self.rows += len(batch)
        batch.rows = []
        logger.debug(
            "Stream '%s': batch of %d rows %.3f s",
            self.stream, len(batch), time.perf_counter() - started,
        )  # fmt: skip

    def copy_or_merge(self, batch: Batch, encoder: CopyRowEncoder) -> None:
        """COPY straight in; a batch that repeats a key is merged instead (last one wins)."""
        if not self.landing.copy_into(batch, encoder.columns, keyed=bool(self.table.ddl_keys)):
            self.merge(batch, encoder)

    def merge(self, batch: Batch, encoder: CopyRowEncoder) -> None:
        """Through the staging table, last record per key winning."""
        self.landing.merge_into(batch, encoder.columns, self.table.ddl_keys, encoder.fingerprint)

    # --- the worker --------------------------------------------------------------------------

    def worker(self) -> BatchWorker:
        """The stream's database worker thread (started on first use)."""
        if self._worker is None:
            self._worker = BatchWorker(f"twr-{self.stream}")
        return self._worker

    def in_worker(
        self, job: Callable[[], None], line: int | None = None, doing: str = ""
    ) -> Callable[[], None]:
        """Wrap a worker job: database errors become LoadErrors naming the stream."""

        def run() -> None:
            try:
                job()
            except psycopg2.Error as exc:
                raise self.table.error(exc, line, doing) from None
            except LoadError:
                raise
            except Exception as exc:  # unexpected: keep the traceback, name the stream
                exc.add_note(f"while loading stream '{self.stream}'")
                raise

        return run

    def wait(self) -> None:
        """Wait until the worker has loaded every batch handed to it; raise its error."""
        if self._worker is not None:
            self._worker.wait()

    def settle(self) -> BaseException | None:
        """Wait until the worker is idle; return (do not raise) its error, if any."""
        return None if self._worker is None else self._worker.settle()

    # --- transaction ---------------------------------------------------------------------------

    def begin_history(self) -> None:
        """The stream's `running` history row, once per load."""
        if self.history_id is None:
            self.history_id = self.ctx.history.begin(self.stream, self.table.table, self.name)

    def commit_now(self, *, final: bool, first_line: int | None, last_line: int) -> None:
        """History row (final) + COMMIT; the line numbers are those of the records it covers."""
        cursor = self.table.cursor
        if final and self.history_id is not None:
            history.finish(
                cursor,
                self.cfg.schema,
                self.history_id,
                status=self.result,
                rows=self.rows,
                first_line=first_line,
                last_line=last_line or None,
                notes=self.table.notes(),
            )
        set_phase(cursor, self.stream, "commit")
        started = time.perf_counter()
        try:
            self._commit_gate.commit(self.table.conn.commit)
        except LoadAborted:
            raise LoadError("load aborted before its commit", stream=self.stream) from None
        logger.debug("Stream '%s': commit %.3f s", self.stream, time.perf_counter() - started)
        self.committed_line = last_line

    def done(self) -> None:
        """The stream's load committed for good."""
        self.status = self.result
        self.finished = time.monotonic()

    # --- ACTIVATE_VERSION and the end ----------------------------------------------------------

    def activate_version(self, version: int, line: int) -> None:
        """Honour ACTIVATE_VERSION only once this version's records are all received.

        A leading ACTIVATE_VERSION (before any record of that version) does nothing, so the
        table is never emptied before the new rows arrive.
        """
        if self.versions.activate(version):
            self.version_complete(version, line)
        else:
            self.version_announced(version, line)

    def check_complete(self) -> None:
        """End of input: refuse a stream whose tap did not finish its version.

        Records carrying version V and no ACTIVATE_VERSION for V after them mean the input
        ended early (the tap died; Meltano may close the pipe before it tells the target).
        """
        version = self.versions.unfinished()
        if version is None:
            return
        raise LoadError(
            f"input ended before ACTIVATE_VERSION for version {version} — the tap did "
            f"not finish; {self.incomplete}",
            stream=self.stream,
        )

    def abort(self) -> None:
        """Stop the worker, roll back whatever is open and close the connection.

        A COMMIT that has not started yet never starts; one already under way either finishes
        (the table is complete and new) or is cancelled (the table is complete and old).
        """
        conn = self.table.conn
        self._commit_gate.close()
        with contextlib.suppress(psycopg2.Error):
            conn.cancel()
        if self._worker is not None:
            self._worker.stop(timeout=0)  # skip queued batches
            deadline = time.monotonic() + 30
            while self._worker.alive and time.monotonic() < deadline:
                with contextlib.suppress(psycopg2.Error):
                    conn.cancel()  # the statement running in the worker, if any
                self._worker.join(0.1)
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
        self.table.close()

    def tidy(self) -> None:
        """After every stream committed: VACUUM the table (`vacuum: after-load`), so the
        next load reuses the space its dead rows take instead of growing the table.

        Not right after this stream's commit: another stream's transaction still open then
        would keep those dead rows visible, and VACUUM could not remove them. Outside any
        transaction; never blocks readers or writers (SHARE UPDATE EXCLUSIVE), never
        truncates the table (which would take an ACCESS EXCLUSIVE lock). It runs in the
        stream's worker, on the stream's own connection, so the tables of a run are vacuumed
        side by side (the session waits for them all); a failure is only a warning, since
        the data is committed and VACUUM is housekeeping.
        """
        if self.cfg.vacuum != "after-load" or self.status != self.result:
            return

        def vacuum() -> None:
            try:
                self.table.vacuum(analyze=self.analyzes)
            except psycopg2.Error as exc:
                logger.warning("Stream '%s': vacuum failed: %s", self.stream, server_message(exc))

        self.worker().submit(vacuum)

    @property
    def analyzes(self) -> bool:
        """Whether this load ANALYZEs its table after the commit (Replace, when asked)."""
        return False

    def close(self) -> None:
        """Close the connection after a successful end."""
        if self._worker is not None:
            self._worker.stop()
        self.table.close()

    @property
    def uncommitted(self) -> bool:
        """True while records received for this stream are not yet committed."""
        return self.last_record_line > self.committed_line

    @property
    def open_work(self) -> bool:
        """Something of this stream is running or not committed (a failure concerns it)."""
        return self.status == "running" or self.uncommitted or self.in_transaction

    @property
    def python_paths(self) -> tuple[int, int]:
        """Records converted by the typed and by the exact Python path (summary.py)."""
        return self.table.paths.typed, self.table.paths.exact

    def column_names(self) -> Sequence[str]:
        """Current column names (for tests and logging)."""
        return [column.name for column in self.table.columns]
