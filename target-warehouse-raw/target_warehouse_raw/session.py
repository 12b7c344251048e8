"""One run of the target: dispatches messages to stream loaders, tracks STATE, fails safely."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable

import psycopg2

from target_warehouse_raw import __version__, batch_files, history
from target_warehouse_raw.config import WarehouseConfig
from target_warehouse_raw.db import connect, server_message
from target_warehouse_raw.errors import InterruptedError_, LoadError, RecordBeforeSchemaError
from target_warehouse_raw.loader import StreamLoader
from target_warehouse_raw.names import map_identifiers
from target_warehouse_raw.reader import Message
from target_warehouse_raw.summary import ProgressReporter, summary_lines
from target_warehouse_raw.types import SchemaError, TypeInfo, build_columns

logger = logging.getLogger("target-warehouse-raw")

HANDED_OVER_BATCHES = 2


class LoadSession:
    """Everything one run holds: loaders per stream, pending STATE, the control connection."""

    def __init__(self, cfg: WarehouseConfig, write_state: Callable[[dict], None]) -> None:
        self.cfg = cfg
        self.write_state = write_state
        self.run_id = str(uuid.uuid4())
        self.version = __version__
        self.loaders: dict[str, StreamLoader] = {}
        self.tables: dict[str, str] = {}
        self.started_ms = int(time.time() * 1000)
        self.expr_params = {
            "received": "now()",
            "sequence_base": str(self.started_ms * 1_000_000),
            "sync_started": str(self.started_ms),
        }
        self.progress = ProgressReporter(cfg.progress_interval, lambda: self.loaders.values())
        self._control: psycopg2.extensions.connection | None = None
        self._type_cache: dict[str, TypeInfo | None] = {}
        # STATE bookkeeping: (state, {stream: last record line it covers})
        self._pending_states: list[tuple[dict, dict[str, int]]] = []
        self._last_written: str | None = None
        self._records_seen = 0
        self.finished = False  # finish() ran (end of input)
        # Batches handed to stream workers and not yet loaded, all streams together: with the
        # one each stream is building, memory stays flat however many streams follow.
        self.batch_budget = threading.Semaphore(HANDED_OVER_BATCHES)
        # RECORD lines by stream name, for the reader's single-pass path (see _fast_record).
        self.fast_records: dict[bytes, Callable[[int, bytes], bool]] = {}

    # --- connections -------------------------------------------------------------------------

    def control_cursor(self) -> psycopg2.extensions.cursor:
        """Autocommit connection for history bookkeeping and type lookups."""
        if self._control is None:
            self._control = connect(self.cfg.connection, None, "control")
            self._control.autocommit = True
            with self._control.cursor() as cursor:
                history.ensure_history(cursor, self.cfg.schema)
        return self._control.cursor()

    def resolve_type(self, type_text: str) -> TypeInfo | None:
        """Is `type_text` a real type in the warehouse? (cached; safe against bad input)."""
        if type_text in self._type_cache:
            return self._type_cache[type_text]
        cursor = self.control_cursor()
        info = None
        try:
            cursor.execute(
                """SELECT t.typname, t.typcategory, e.typname FROM pg_type t
                   LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
                   WHERE t.oid = to_regtype(%s)""",
                (type_text,),
            )
            row = cursor.fetchone()
            if row is not None:
                # to_regtype ignores type modifiers: check the full text parses too.
                cursor.execute(f"SELECT NULL::{type_text}")
                info = TypeInfo(row[0], row[1], row[2])
        except psycopg2.Error:
            info = None
        if info is None:
            logger.warning("x-sql-datatype %r is not a type here; using JSON Schema", type_text)
        self._type_cache[type_text] = info
        return info

    # --- messages ----------------------------------------------------------------------------

    def on_schema(self, line: int, message: Message) -> None:
        """SCHEMA: build the columns; create/evolve the stream's loader."""
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
                self.resolve_type,
                add_metadata=self.cfg.add_record_metadata,
            )
        except SchemaError as exc:
            raise LoadError(str(exc), stream=stream, line=line) from None
        if self.cfg.load_method == "upsert" and not keys:
            raise LoadError(
                "load_method 'upsert' needs key properties, and this stream has none",
                stream=stream,
                line=line,
            )
        key_columns = [next(c.name for c in columns if c.prop == k) for k in keys]
        loader = self.loaders.get(stream)
        if loader is None:
            table = self._table_for(stream)
            self.control_cursor()  # schema + history table exist before any load
            try:
                bookmarks = _names(message.bookmark_properties)
                loader = StreamLoader(self, stream, table, columns, key_columns, line, bookmarks)
            except psycopg2.Error as exc:
                raise LoadError(server_message(exc), stream=stream, line=line) from None
            self.loaders[stream] = loader
            name = json.dumps(stream, ensure_ascii=False).encode()[1:-1]
            if name == stream.encode():  # as a RECORD line spells it: no JSON escapes
                self.fast_records[name] = self._fast_record(loader)
        else:
            loader.bookmarks = _names(message.bookmark_properties)
            with loader.database_errors(line):
                loader.apply_schema(columns, key_columns, line)

    def _table_for(self, stream: str) -> str:
        names = map_identifiers([*self.tables, stream])
        table = names[stream]
        if table in self.tables.values():
            raise LoadError(f"stream maps to table '{table}', already used", stream=stream)
        self.tables[stream] = table
        return table

    def on_record(self, line: int, message: Message) -> None:
        """RECORD: any line the single-pass path (fast_record) did not take."""
        loader = self.loaders.get(message.stream)  # type: ignore[arg-type]
        if loader is None:
            raise RecordBeforeSchemaError(
                "RECORD before any SCHEMA for this stream", stream=message.stream, line=line
            )
        if not message.record:
            raise LoadError("RECORD message without a record", stream=message.stream, line=line)
        try:
            loader.add(line, message)
        except psycopg2.Error as exc:  # upsert/append-only load in the main thread
            raise loader.db_error(exc, line) from None
        self._count_record()

    def _fast_record(self, loader: StreamLoader) -> Callable[[int, bytes], bool]:
        """The hot path: one stream's RECORD lines, straight from the reader (see add_line)."""
        add_line = loader.add_line

        def fast_record(line: int, text: bytes) -> bool:
            try:
                if not add_line(line, text):
                    return False
            except psycopg2.Error as exc:  # upsert/append-only load in the main thread
                raise loader.db_error(exc, line) from None
            self._count_record()
            return True

        return fast_record

    def _count_record(self) -> None:
        self._records_seen += 1
        if self._records_seen % 20_000 == 0:
            self.progress.maybe_report()
            if self._pending_states:  # a worker may have committed what they cover
                self._emit_ready_states()

    def on_state(self, line: int, message: Message) -> None:
        """STATE: held until every stream with records before it has committed them."""
        if not isinstance(message.value, dict) or not message.value:
            logger.info("Input line %d: empty or non-object STATE ignored", line)
            return
        covers = {
            name: loader.last_record_line
            for name, loader in self.loaders.items()
            if loader.uncommitted
        }
        self._pending_states.append((message.value, covers))
        self._emit_ready_states()

    def on_activate_version(self, line: int, message: Message) -> None:
        """ACTIVATE_VERSION: see StreamLoader.activate_version."""
        loader = self.loaders.get(message.stream)  # type: ignore[arg-type]
        if loader is None:
            raise RecordBeforeSchemaError(
                "ACTIVATE_VERSION before any SCHEMA for this stream",
                stream=message.stream,
                line=line,
            )
        if message.version is None:
            raise LoadError("ACTIVATE_VERSION without a version", stream=loader.stream, line=line)
        with loader.database_errors(line):
            loader.activate_version(int(message.version), line)

    def on_batch(self, line: int, message: Message) -> None:
        """BATCH: the records of the files it names, each like one RECORD of this line.

        The message's `version` applies to all of them, as a RECORD's does (so a tap that ends
        its stream with ACTIVATE_VERSION is checked for completeness the same way).
        """
        loader = self.loaders.get(message.stream)  # type: ignore[arg-type]
        if loader is None:
            raise RecordBeforeSchemaError(
                "BATCH before any SCHEMA for this stream", stream=message.stream, line=line
            )
        try:
            compression, paths = batch_files.file_paths(message.encoding, message.manifest)
            version = message.version
            for path in paths:
                loader.batch_file = path
                add = loader.add_record
                for number, raw in batch_files.records(path, compression):
                    add(line, raw, version, None, number)
                    self._records_seen += 1
                self.progress.maybe_report()
        except batch_files.BatchError as exc:
            raise LoadError(str(exc), stream=loader.stream, line=line) from None
        except psycopg2.Error as exc:  # upsert/append-only load in the main thread
            raise loader.db_error(exc, line) from None
        if self._pending_states:
            self._emit_ready_states()

    # --- STATE -------------------------------------------------------------------------------

    def stream_committed(self, loader: StreamLoader) -> None:
        """Called after every commit: some held STATE may now be safe to write."""
        self._emit_ready_states()

    def _emit_ready_states(self) -> None:
        ready = None
        while self._pending_states:
            state, covers = self._pending_states[0]
            if any(self.loaders[name].committed_line < last for name, last in covers.items()):
                break
            ready = state
            self._pending_states.pop(0)
        if ready is not None:
            text = json.dumps(ready, separators=(",", ":"))
            if text != self._last_written:
                self.write_state(ready)
                self._last_written = text

    # --- end ---------------------------------------------------------------------------------

    def finish(self) -> None:
        """End of input: commit every stream, then write the last STATE."""
        self.finished = True
        loaders = list(self.loaders.values())
        # Nothing is committed until every open stream is complete and fully loaded: any
        # failure up to here rolls every open stream back (streams committed earlier by their
        # ACTIVATE_VERSION stay committed). Then the commits, one stream after the other.
        for loader in loaders:
            loader.check_complete()
        for loader in loaders:
            with loader.database_errors():
                loader.finish_load()
        for loader in loaders:
            with loader.database_errors():
                loader.wait()
        for loader in loaders:
            with loader.database_errors(doing="commit"):
                loader.finish_commit()
            self._emit_ready_states()
        for loader in self.loaders.values():
            loader.close()
        self._close_control()
        self.log_summary()

    def abort(self, exc: BaseException) -> BaseException:
        """Roll back every open transaction, record the failure, close everything.

        Returns the error to report: after an error (not a signal) the stream workers first
        finish what they were handed, exactly as if batches and commits had run in input order;
        an error a worker met there comes earlier in the input, so it is the one reported.
        """
        if not isinstance(exc, (InterruptedError_, KeyboardInterrupt)):
            earlier = [loader.settle() for loader in self.loaders.values()]
            located = [e for e in earlier if isinstance(e, LoadError) and e.line is not None]
            failures = located or [e for e in earlier if e is not None]
            if failures and not any(e is exc for e in failures):
                exc = min(failures, key=lambda e: getattr(e, "line", None) or 0)
        status = getattr(exc, "status", "failed")
        failed_stream = getattr(exc, "stream", None)
        message = str(exc) if isinstance(exc, LoadError) else server_message(exc)
        for loader in self.loaders.values():
            loader.abort()
            open_work = loader.status == "running" or loader.uncommitted or loader.in_replace
            if not open_work:
                continue
            loader.status = status
            loader.finished = time.monotonic()
            own = failed_stream is None or failed_stream == loader.stream
            try:
                if loader.history_id is None:  # failed before its load began
                    loader.history_id = history.start(
                        self.control_cursor(),
                        self.cfg.schema,
                        run_id=self.run_id,
                        stream=loader.stream,
                        table=loader.table,
                        load_method=loader.method or self.cfg.load_method,
                        version=self.version,
                    )
                history.finish(
                    self.control_cursor(),
                    self.cfg.schema,
                    loader.history_id,
                    status=status,
                    rows=0,
                    first_line=loader.first_line,
                    last_line=loader.last_record_line or None,
                    error=message if own else f"rolled back because of: {message}",
                )
            except (psycopg2.Error, ConnectionError, LoadError):
                logger.warning("Could not record the failure of stream '%s'", loader.stream)
        self._close_control()
        self.log_summary()
        return exc

    def _close_control(self) -> None:
        if self._control is not None:
            with contextlib.suppress(psycopg2.Error):
                self._control.close()
            self._control = None

    def log_summary(self) -> None:
        """The per-stream summary table, on stderr."""
        if not self.loaders:
            return
        for text in summary_lines(self.loaders.values()):
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _names(value: object) -> tuple[str, ...]:
    """A SCHEMA's list of property names (bookmark_properties); anything else is none."""
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))
