"""One run of the target: messages to stream loads, STATE held until committed, safe failure.

The session creates each stream's load at its first SCHEMA (of the class its load method
names, see load/methods/) and hands it what it needs (load/context.py); loads never reach
back. At the end of input every stream is completed and loaded first, then committed one
after the other; on any failure every open transaction is rolled back and the failure is
recorded in the load history.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Callable

import psycopg2

from target_warehouse_raw import __version__
from target_warehouse_raw.config import WarehouseConfig
from target_warehouse_raw.errors import InterruptedError_, LoadError, RecordBeforeSchemaError
from target_warehouse_raw.load.context import LoadContext, new_batch_budget
from target_warehouse_raw.load.methods import choose
from target_warehouse_raw.load.methods.apply_changes import is_change_stream
from target_warehouse_raw.load.stream import StreamLoad
from target_warehouse_raw.messages import batch_files
from target_warehouse_raw.messages.decode import Message, record_stream_name
from target_warehouse_raw.schema.columns import SchemaError, build_columns
from target_warehouse_raw.schema.names import map_identifiers
from target_warehouse_raw.state import HeldStates
from target_warehouse_raw.summary import ProgressReporter, path_summary, summary_lines
from target_warehouse_raw.warehouse.control import ControlConnection
from target_warehouse_raw.warehouse.db import server_message
from target_warehouse_raw.warehouse.history import LoadHistory

logger = logging.getLogger("target-warehouse-raw")

PROGRESS_EVERY_RECORDS = 20_000
"""How often the reading loop looks at the clock for progress and releasable STATE."""


class LoadSession:
    """Everything one run holds: a load per stream, held STATE, the control connection."""

    def __init__(self, cfg: WarehouseConfig, write_state: Callable[[dict], None]) -> None:
        self.cfg = cfg
        self.run_id = str(uuid.uuid4())
        self.loads: dict[str, StreamLoad] = {}
        self.tables: dict[str, str] = {}
        started_ms = int(time.time() * 1000)
        self.progress = ProgressReporter(cfg.progress_interval, lambda: self.loads.values())
        self.control = ControlConnection(cfg.connection, cfg.schema)
        self.states = HeldStates(write_state)
        self.ctx = LoadContext(
            cfg=cfg,
            history=LoadHistory(
                self.control.cursor, cfg.schema, run_id=self.run_id, target_version=__version__
            ),
            resolve_type=self.control.resolve_type,
            row_params={
                "sequence_base": str(started_ms * 1_000_000),
                "sync_started": str(started_ms),
            },
            batch_budget=new_batch_budget(),
            report_progress=self.progress.maybe_report,
            committed=self._release_states,
        )
        self._records_seen = 0
        self.finished = False  # finish() ran (end of input)
        # RECORD lines by stream name, for the reader's single-pass path (see _fast_record).
        self.fast_records: dict[bytes, Callable[[int, bytes], bool]] = {}

    # --- messages ----------------------------------------------------------------------------

    def on_schema(self, line: int, message: Message) -> None:
        """SCHEMA: build the columns; create the stream's load, or change its table."""
        stream = message.stream
        if not isinstance(stream, str) or not stream:
            raise LoadError("SCHEMA message without a stream name", line=line)
        keys = message.key_properties or []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise LoadError("key_properties must be a list of names", stream=stream, line=line)
        try:
            columns = build_columns(
                message.schema or {},
                keys,
                self.control.resolve_type,
                add_metadata=self.cfg.add_record_metadata,
            )
        except SchemaError as exc:
            raise LoadError(str(exc), stream=stream, line=line) from None
        key_columns = [next(c.name for c in columns if c.prop == k) for k in keys]
        load = self.loads.get(stream)
        if load is not None:
            with load.table.errors(line):
                load.apply_schema(columns, key_columns, line)
            return
        bookmarks = _names(message.bookmark_properties)
        method = choose(
            self.cfg.method_for(stream),
            stream=stream,
            keys=keys,
            bookmarks=bookmarks,
            changes=is_change_stream(bookmarks, (message.schema or {}).get("properties")),
            line=line,
        )
        table = self._table_for(stream)
        self.control.cursor()  # schema + history table exist before any load
        try:
            load = method(self.ctx, stream, table, columns, key_columns, line)
        except psycopg2.Error as exc:
            raise LoadError(server_message(exc), stream=stream, line=line) from None
        logger.info(
            "Stream '%s': %s, loaded by %s into %s",
            stream,
            f"partial extract (bookmark properties {list(bookmarks)})"
            if bookmarks
            else "complete extract",
            method.name,
            load.table_sql,
        )
        self.loads[stream] = load
        spelling = record_stream_name(stream)
        if spelling is not None:
            self.fast_records[spelling] = self._fast_record(load)

    def _table_for(self, stream: str) -> str:
        names = map_identifiers([*self.tables, stream])
        table = names[stream]
        if table in self.tables.values():
            raise LoadError(f"stream maps to table '{table}', already used", stream=stream)
        self.tables[stream] = table
        return table

    def _load_of(self, message: Message, line: int, what: str) -> StreamLoad:
        load = self.loads.get(message.stream)  # type: ignore[arg-type]
        if load is None:
            raise RecordBeforeSchemaError(
                f"{what} before any SCHEMA for this stream", stream=message.stream, line=line
            )
        return load

    def on_record(self, line: int, message: Message) -> None:
        """RECORD: any line the single-pass path (fast_record) did not take."""
        load = self._load_of(message, line, "RECORD")
        if not message.record:
            raise LoadError("RECORD message without a record", stream=message.stream, line=line)
        try:
            load.add_record(line, bytes(message.record), message.version, message.time_extracted)
        except psycopg2.Error as exc:  # per-batch loads land in the main thread
            raise load.table.error(exc, line) from None
        self._count_record()

    def _fast_record(self, load: StreamLoad) -> Callable[[int, bytes], bool]:
        """The hot path: one stream's RECORD lines, straight from the reader (see add_line)."""
        add_line = load.add_line

        def fast_record(line: int, text: bytes) -> bool:
            try:
                if not add_line(line, text):
                    return False
            except psycopg2.Error as exc:  # per-batch loads land in the main thread
                raise load.table.error(exc, line) from None
            self._count_record()
            return True

        return fast_record

    def _count_record(self) -> None:
        self._records_seen += 1
        if self._records_seen % PROGRESS_EVERY_RECORDS == 0:
            self.progress.maybe_report()
            if self.states:  # a worker may have committed what they cover
                self._release_states()

    def on_state(self, line: int, message: Message) -> None:
        """STATE: held until every stream with records before it has committed them."""
        if not isinstance(message.value, dict) or not message.value:
            logger.info("Input line %d: empty or non-object STATE ignored", line)
            return
        covers = {
            name: load.last_record_line for name, load in self.loads.items() if load.uncommitted
        }
        self.states.hold(message.value, covers)
        self._release_states()

    def on_activate_version(self, line: int, message: Message) -> None:
        """ACTIVATE_VERSION: see StreamLoad.activate_version."""
        load = self._load_of(message, line, "ACTIVATE_VERSION")
        if message.version is None:
            raise LoadError("ACTIVATE_VERSION without a version", stream=load.stream, line=line)
        with load.table.errors(line):
            load.activate_version(int(message.version), line)

    def on_batch(self, line: int, message: Message) -> None:
        """BATCH: the records of the files it names, each like one RECORD of this line.

        The message's `version` applies to all of them, as a RECORD's does (so a tap that ends
        its stream with ACTIVATE_VERSION is checked for completeness the same way).
        """
        load = self._load_of(message, line, "BATCH")
        try:
            compression, paths = batch_files.file_paths(message.encoding, message.manifest)
            version = message.version
            for path in paths:
                load.batch_file = path
                add = load.add_record
                for number, raw in batch_files.records(path, compression):
                    add(line, raw, version, None, number)
                    self._records_seen += 1
                self.progress.maybe_report()
        except batch_files.BatchError as exc:
            raise LoadError(str(exc), stream=load.stream, line=line) from None
        except psycopg2.Error as exc:  # per-batch loads land in the main thread
            raise load.table.error(exc, line) from None
        if self.states:
            self._release_states()

    def _release_states(self) -> None:
        """Called after commits: some held STATE may now be safe to write."""
        if self.states:
            self.states.release({name: load.committed_line for name, load in self.loads.items()})

    # --- end ---------------------------------------------------------------------------------

    def finish(self) -> None:
        """End of input: commit every stream, then write the last STATE."""
        self.finished = True
        loads = list(self.loads.values())
        # Nothing is committed until every open stream is complete and fully loaded: any
        # failure up to here rolls every open stream back (streams committed earlier by their
        # ACTIVATE_VERSION stay committed). Then the commits, one stream after the other.
        for load in loads:
            load.check_complete()
        for load in loads:
            with load.table.errors():
                load.finish_load()
        for load in loads:
            with load.table.errors():
                load.wait()
        for load in loads:
            with load.table.errors(doing="commit"):
                load.finish_commit()
            self._release_states()
        for load in loads:
            load.tidy()  # queued in each stream's worker: the VACUUMs run side by side
        for load in loads:
            load.wait()
        for load in loads:
            load.close()
        self.control.close()
        self.log_summary()

    def abort(self, exc: BaseException) -> BaseException:
        """Roll back every open transaction, record the failure, close everything.

        Returns the error to report: after an error (not a signal) the stream workers first
        finish what they were handed, exactly as if batches and commits had run in input order;
        an error a worker met there comes earlier in the input, so it is the one reported.
        """
        if not isinstance(exc, (InterruptedError_, KeyboardInterrupt)):
            earlier = [load.settle() for load in self.loads.values()]
            located = [e for e in earlier if isinstance(e, LoadError) and e.line is not None]
            failures = located or [e for e in earlier if e is not None]
            if failures and not any(e is exc for e in failures):
                exc = min(failures, key=lambda e: getattr(e, "line", None) or 0)
        status = getattr(exc, "status", "failed")
        failed_stream = getattr(exc, "stream", None)
        message = str(exc) if isinstance(exc, LoadError) else server_message(exc)
        for load in self.loads.values():
            load.abort()
            if not load.open_work:
                continue
            load.status = status
            load.finished = time.monotonic()
            own = failed_stream is None or failed_stream == load.stream
            self._record_failure(load, status, message if own else f"rolled back because of: "
                                 f"{message}")  # fmt: skip
        self.control.close()
        self.log_summary()
        return exc

    def _record_failure(self, load: StreamLoad, status: str, error: str) -> None:
        history = self.ctx.history
        try:
            if load.history_id is None:  # failed before its load began
                load.history_id = history.start(load.stream, load.table.table, load.name)
            history.record_failure(
                load.history_id,
                status=status,
                first_line=load.first_line,
                last_line=load.last_record_line or None,
                error=error,
            )
        except (psycopg2.Error, ConnectionError, LoadError):
            logger.warning("Could not record the failure of stream '%s'", load.stream)

    def log_summary(self) -> None:
        """The per-stream summary table, on stderr, and which paths converted the records."""
        if not self.loads:
            return
        for text in summary_lines(self.loads.values()):
            sys.stderr.write(text + "\n")
        sys.stderr.flush()
        logger.info("%s", path_summary(self.loads.values()))


def _names(value: object) -> tuple[str, ...]:
    """A SCHEMA's list of property names (bookmark_properties); anything else is none."""
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))
