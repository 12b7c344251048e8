"""ManufacturingStream: read one source table and write it as Singer messages.

The fast path lets PostgreSQL render every row as JSON (a `json_build_array` array whose
keys _rekey.c puts back, the same text `row_to_json` gives at about two thirds of the server's
cost) inside a REPEATABLE READ READ ONLY transaction, fetches it from a server-side cursor in
large batches, and writes RECORD lines by concatenating bytes around the server-made JSON (or,
with `batch_config`, JSON Lines files announced by BATCH messages): no per-row dict and no
per-row encoding. When the user configured stream maps or flattening,
or the SDK runs a dry run with a record limit, rows are decoded (floats as Decimal, so no
digit is lost) and handed to the SDK's own per-record path instead.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extensions
from singer_sdk import Stream, metrics
from singer_sdk.helpers._catalog import get_selected_schema
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import ActivateVersionMessage, CatalogEntry, SchemaMessage
from singer_sdk.streams.core import REPLICATION_INCREMENTAL

from tap_manufacturing.client import SourceError, connect, describe_error, prefetched
from tap_manufacturing.config import SourceSettings
from tap_manufacturing.discovery import TableInfo, TableNotFound, describe_table
from tap_manufacturing.logical.catalog import (
    CHANGE_PROPERTIES,
    DELETED_AT_PROPERTY,
    LSN_PROPERTY,
    with_change_properties,
)
from tap_manufacturing.logical.render import RenderColumn
from tap_manufacturing.logical.sync import sync_log_based
from tap_manufacturing.output import DECODER, BatchFiles, RecordLines, RowWriter, SingerOutput
from tap_manufacturing.types import marked_as_json_text, property_schema, select_expression

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context, Record
    from singer_sdk.singerlib import MetadataMapping

try:  # the read path's C re-keying; see _rekey.c and setup.py
    from tap_manufacturing import _rekey
except ImportError:  # pragma: no cover - installed where no C compiler was at hand
    _rekey = None

try:  # Python 3.12+
    from typing import override
except ImportError:  # pragma: no cover
    from typing_extensions import override


ROW_ALIAS = "_tap_manufacturing_row"
"""Alias of the row subquery; unlike `t`, it cannot be mistaken for a column name."""

MAX_ARRAY_COLUMNS = 100
"""json_build_array takes at most 100 arguments (the server's FUNC_MAX_ARGS); wider
selections are read as row_to_json objects."""


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


class ManufacturingStream(Stream):
    """One source table as one Singer stream (the stream name is the source name).

    A plain SDK Stream built from its catalog entry, as the SDK's SQLStream builds one, but
    without SQLStream itself: that class imports SQLAlchemy, which would add about 0.15 s to
    every start of the tap (Meltano starts it twice per run: discovery, then the sync) for a
    query builder and engine this tap never uses (it reads through psycopg2, see client.py).
    """

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    """PostgreSQL already rendered every value in its exact JSON form; nothing to conform."""

    def __init__(self, tap: Any, catalog_entry: dict, source: SourceSettings) -> None:
        """Bind the stream to its source and take replication settings from its entry."""
        if _replication_method(catalog_entry, source) == "LOG_BASED":
            catalog_entry = with_change_properties(catalog_entry)
        self.catalog_entry = catalog_entry
        self.source = source
        self.settings = tap.settings
        self._schema_pending = False
        self._whole_table = True  # this run reads every row (see get_records)
        self._record_counter: Any = None
        entry = self._singer_catalog_entry
        super().__init__(tap=tap, schema=entry.schema.to_dict(), name=entry.tap_stream_id)
        self._resolve_replication()

    # -- the catalog entry is the stream's definition (as in the SDK's SQLStream) --------

    @property
    def _singer_catalog_entry(self) -> CatalogEntry:
        return CatalogEntry.from_dict(self.catalog_entry)

    @override
    @property
    def metadata(self) -> MetadataMapping:
        """The entry's metadata (an input catalog's, when one was given)."""
        return self._singer_catalog_entry.metadata

    @override
    @property
    def tap_stream_id(self) -> str:
        """The entry's tap_stream_id (the source name)."""
        return self._singer_catalog_entry.tap_stream_id

    @override
    @property
    def primary_keys(self) -> list[str]:
        """The entry's table-key-properties (the table's primary key at discovery)."""
        return list(self._singer_catalog_entry.metadata.root.table_key_properties or [])

    @primary_keys.setter
    def primary_keys(self, new_value: Any) -> None:
        """Ignored: the catalog entry stays the one definition of the key (as in SQLStream)."""

    @override
    @property
    def is_sorted(self) -> bool:
        """INCREMENTAL reads are ordered by the replication key, so they can resume."""
        return self.replication_method == REPLICATION_INCREMENTAL

    def get_selected_schema(self) -> dict:
        """The schema with only the selected properties: the columns to read."""
        return get_selected_schema(stream_name=self.name, schema=self.schema, mask=self.mask)

    @override
    def _write_schema_message(self) -> None:
        """Hold the SCHEMA back until the source has answered the read query.

        A target may take "SCHEMA, then end of input" for an empty stream and replace its
        table with an empty one. If the source fails before the first rows arrive (lock wait
        cut short, connection dropped), no SCHEMA has gone out, so no target can mistake the
        failed read for an empty table. `release_schema` writes it.
        """
        self._schema_pending = True

    @override
    def _generate_schema_messages(self) -> Iterator[SchemaMessage]:
        """The SDK's SCHEMA messages, without bookmark properties when this run reads the
        whole table: that read is complete (versioned, closed by ACTIVATE_VERSION), and a
        target may replace the table with it. An incremental read that starts from a
        bookmark names its bookmark property, and is merged, never replacing the table."""
        for message in super()._generate_schema_messages():
            if self._whole_table:
                message.bookmark_properties = None
            yield message

    @override
    def get_record_counter(self, **kwargs: Any) -> metrics.Counter:
        """The SDK's record counter, kept: the fast path writes records itself, past the
        SDK's per-record loop, and adds each chunk's rows to it (the `record_count` metric)."""
        self._record_counter = super().get_record_counter(**kwargs)
        return self._record_counter

    def release_schema(self) -> None:
        """Write the held-back SCHEMA now (once)."""
        if self._schema_pending:
            self._schema_pending = False
            super()._write_schema_message()

    def _resolve_replication(self) -> None:
        """Replication method and key: the catalog's choice first, then the source's config.

        The SDK does not read the Singer `replication-method` stream metadata (the field
        Meltano's `metadata:` extra sets), so it is read here from the raw catalog entry:
        `replication-method` metadata, then the entry's `replication_method`, then
        `forced-replication-method`, then the config. The key likewise.
        """
        entry = self.catalog_entry
        method = _replication_method(entry, self.source)
        key = _root_metadata(entry).get("replication-key") or entry.get("replication_key")
        if method == "INCREMENTAL" and not key:
            key = self.source.replication_key
        self.forced_replication_method = method
        if method == "LOG_BASED":  # the bookmark's field, in SCHEMA bookmark_properties
            self.replication_key = LSN_PROPERTY
        else:
            self.replication_key = key if method == "INCREMENTAL" else None

    @property
    def _incremental_key(self) -> str | None:
        """The replication key of an INCREMENTAL read (LOG_BASED bookmarks are positions)."""
        return self.replication_key if self.replication_method == "INCREMENTAL" else None

    @override
    @property
    def emit_activate_version_messages(self) -> bool:
        """False: the SDK would emit ACTIVATE_VERSION before the records; we emit it after."""
        return False

    @override
    @property
    def check_sorted(self) -> bool:
        """The server sorts by the key; the JSON text of a key (BC or 5-digit years) does
        not always sort as a string, so the SDK must not second-guess the order."""
        return False

    @override
    def apply_catalog(self, catalog: Any) -> None:
        """The SDK's catalog handling, then our replication rules (see _resolve_replication)."""
        super().apply_catalog(catalog)
        self._resolve_replication()

    @override
    def get_batch_config(self, config: Any) -> None:
        """None, so the SDK never takes its own batch path (records through Python dicts).

        With `batch_config` set, the fast path writes the BATCH files itself (see output.py),
        keeping the held-back SCHEMA, the versions, STATE and ACTIVATE_VERSION as they are.
        """
        return None

    # -- helpers -------------------------------------------------------------------

    @property
    def _output(self) -> SingerOutput:
        writer = self._tap.message_writer
        if not isinstance(writer, SingerOutput):  # pragma: no cover - set by the tap
            msg = "ManufacturingStream needs the tap's SingerOutput message writer"
            raise TypeError(msg)
        return writer

    def _uses_fast_path(self) -> bool:
        """True when records go out unchanged: no map, no flattening, no record limit."""
        if self.ABORT_AT_RECORD_COUNT is not None or self.config.get("flattening_enabled"):
            return False
        maps = self.stream_maps
        return (
            len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and maps[0].stream_alias == self.name
            and not maps[0].flattening_enabled
        )

    def _build_query(
        self,
        table: TableInfo,
        starting_value: Any,
        *,
        fast: bool,
        extra_columns: dict[str, str] | None = None,
    ) -> tuple[str, list, tuple[bytes, ...] | None]:
        """The read query, its parameters, and the JSON keys when rows come as arrays.

        Each row comes as the JSON object row_to_json renders, or, on the fast path with the C
        module at hand, as the array json_build_array renders, which costs the server about a
        third less; _rekey puts the keys back, giving the same objects (see _rekey.c).
        `extra_columns` gives the SQL expression of selected properties that are not table
        columns (a LOG_BASED snapshot's `_sdc_*`).
        """
        properties = self.get_selected_schema().get("properties", {})
        selected = list(properties)
        expressions = []
        extra_columns = extra_columns or {}
        for name in selected:
            if name in extra_columns:
                expressions.append(f"{extra_columns[name]} AS {quote_ident(name)}")
                continue
            column = table.column(name)
            if column is None:
                msg = (
                    f"{self.source.describe()}: column '{name}' from the catalog is not in "
                    f"{self.source.schema}.{self.source.table}; run discovery again"
                )
                raise SourceError(msg)
            # The catalog's own description decides how json travels, so SCHEMA and records
            # always agree (a catalog discovered without json_as_text gets JSON values).
            as_text = marked_as_json_text(properties[name])
            expression = select_expression(column.type, quote_ident(name), json_as_text=as_text)
            expressions.append(f"{expression} AS {quote_ident(name)}")
        if not expressions:
            msg = f"{self.source.describe()}: no column of stream '{self.name}' is selected"
            raise SourceError(msg)
        source_table = f"{quote_ident(self.source.schema)}.{quote_ident(self.source.table)}"
        inner = f"SELECT {', '.join(expressions)} FROM {source_table}"
        params: list = []
        outer_extra = ""
        key = self._incremental_key
        if key:
            key_column = table.column(key)
            if key_column is None:
                msg = (
                    f"{self.source.describe()}: replication key '{key}' is not a column of "
                    f"{self.source.schema}.{self.source.table}"
                )
                raise SourceError(msg)
            if starting_value is not None:
                inner += f" WHERE {quote_ident(key)} >= %s::{key_column.type.exact}"
                params.append(str(starting_value))
            inner += f" ORDER BY {quote_ident(key)}"
            outer_extra = f", to_json({ROW_ALIAS}.{quote_ident(key)})::text"
        if self.ABORT_AT_RECORD_COUNT is not None:
            inner += f" LIMIT {int(self.ABORT_AT_RECORD_COUNT) + 1}"
        if fast and _rekey is not None and len(selected) <= MAX_ARRAY_COLUMNS:
            values = ", ".join(f"{ROW_ALIAS}.{quote_ident(name)}" for name in selected)
            keys = tuple(json.dumps(name, ensure_ascii=False).encode() for name in selected)
            rendered = f"json_build_array({values})::text"
        else:
            keys = None
            rendered = f"row_to_json({ROW_ALIAS})::text"
        query = f"SELECT {rendered}{outer_extra} FROM ({inner}) AS {ROW_ALIAS}"
        return query, params, keys

    def _log_progress(self, rows: int, started: float, *, final: bool) -> None:
        seconds = max(time.monotonic() - started, 1e-9)
        self.logger.info(
            "%s '%s': %d rows in %.1f s (%.0f rows/s)%s",
            "Finished stream" if final else "Progress of stream",
            self.name,
            rows,
            seconds,
            rows / seconds,
            "" if final else " so far",
        )

    # -- reading -------------------------------------------------------------------

    @override
    def get_records(self, context: Context | None) -> Iterable[Record]:
        """Read the table: fast path writes records itself, else yield dicts to the SDK."""
        if context:  # pragma: no cover
            msg = f"Stream '{self.name}' does not support partitioning."
            raise NotImplementedError(msg)
        if self.replication_method == "INCREMENTAL" and not self.replication_key:
            msg = f"{self.source.describe()}: INCREMENTAL replication needs a replication key"
            raise SourceError(msg)
        if self.replication_method == "LOG_BASED":
            if not self._uses_fast_path():
                msg = (
                    f"{self.source.describe()}: LOG_BASED streams are written as they are: "
                    "stream maps, flattening and record limits are not supported (use a "
                    "mapper plugin after the tap)"
                )
                raise SourceError(msg)
            # A change stream always names its bookmark (`_sdc_lsn`), snapshot or not: the
            # target applies its changes, and replaces the table only for a snapshot.
            self._whole_table = False
            sync_log_based(self)
            return
        starting = self.get_starting_replication_key_value(context)
        # A whole-table read (full table, or an incremental stream without a bookmark: its
        # first run, a full refresh, a cleared state) is complete: its records carry a
        # version and ACTIVATE_VERSION closes it, so a target replaces the table with it.
        self._whole_table = self.replication_method == "FULL_TABLE" or starting is None
        if self._whole_table:
            self._stream_version = self._initialized_at
        fast = self._uses_fast_path()
        if not fast and self.settings.batch is not None:
            self.logger.warning(
                "Stream '%s': batch_config does not apply with stream maps, flattening or a "
                "record limit; its records go out as RECORD messages",
                self.name,
            )
        if fast and _rekey is None:
            self.logger.info(
                "Stream '%s': rows rendered by row_to_json (the C re-keying module was not "
                "built at install: no C compiler; the same records, at more server CPU)",
                self.name,
            )
        action = f"read {self.source.schema}.{self.source.table}"
        started = time.monotonic()
        rows = 0
        with connect(self.source) as connection:
            try:
                table = describe_table(connection, self.source)
            except TableNotFound as exc:
                raise SourceError(f"{self.source.describe()}: {exc}") from None
            except psycopg2.Error as exc:
                raise describe_error(self.source, exc, action) from None
            query, params, keys = self._build_query(table, starting, fast=fast)
            connection.set_session(
                isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ,
                readonly=True,
            )
            try:
                cursor = connection.cursor(name=f"tap_manufacturing_{self.name}")
                psycopg2.extensions.register_type(psycopg2.extensions.BYTES, cursor)
                cursor.execute(query, params)
                if fast:
                    rows = self._write_fast(cursor, started, keys)
                else:
                    for row in self._read_slow(cursor):
                        rows += 1
                        yield row
                cursor.close()
                connection.commit()
            except psycopg2.Error as exc:
                raise describe_error(self.source, exc, action) from None
        self.release_schema()  # an empty table: the read succeeded with no rows
        if self._whole_table:
            self._write_activate_version()
        self._log_progress(rows, started, final=True)

    def _read_slow(self, cursor: psycopg2.extensions.cursor) -> Iterable[Record]:
        """Decoded rows for the SDK's per-record path (maps, flattening, dry runs)."""
        for batch in prefetched(cursor, self.settings.fetch_size):
            self.release_schema()
            for row in batch:
                yield DECODER.decode(row[0])

    def _sink(self) -> RowWriter:
        """RECORD lines on stdout, or BATCH files when `batch_config` is set."""
        batch = self.settings.batch
        if batch is None:
            return RecordLines(self._output, self.name, self._stream_version)
        return BatchFiles(batch, self.name, self._stream_version, self._tap.write_message)

    def _write_fast(
        self, cursor: psycopg2.extensions.cursor, started: float, keys: tuple[bytes, ...] | None
    ) -> int:
        """Write the server's row JSON straight to the sink; returns the row count.

        With `keys`, rows come as JSON arrays and get their keys back first (see _rekey.c).
        """
        sink = self._sink()
        key = self._incremental_key
        fetch = self.settings.fetch_size
        if key:
            fetch = min(fetch, self.settings.state_interval)
        rows = 0
        since_state = 0
        next_log = started + self.settings.progress_interval
        try:
            for batch in prefetched(cursor, fetch):
                self.release_schema()
                extracted = datetime.datetime.now(datetime.timezone.utc).isoformat()
                if keys is None:
                    sink.write([row[0] for row in batch], extracted)
                else:
                    assert _rekey is not None
                    sink.write(_rekey.objects(batch, keys), extracted)
                rows += len(batch)
                since_state += len(batch)
                if self._record_counter is not None:
                    self._record_counter.increment(len(batch))
                if key:
                    self._advance_bookmark(key, batch)
                    if since_state >= self.settings.state_interval:
                        sink.flush()  # the STATE covers only records the target can read
                        self._write_state_message()
                        since_state = 0
                if time.monotonic() >= next_log:
                    self._log_progress(rows, started, final=False)
                    next_log = time.monotonic() + self.settings.progress_interval
            sink.flush()
        except BaseException:
            sink.discard()
            raise
        return rows

    def _advance_bookmark(self, key: str, batch: list) -> None:
        """Move the bookmark to the key of the last written row that has one."""
        for row in reversed(batch):
            if row[1] is not None:
                value = DECODER.decode(row[1])
                self._increment_stream_state({key: value})
                self.state_manager.is_flushed = False
                return

    def _write_activate_version(self) -> None:
        """ACTIVATE_VERSION after the stream's last record (classic Singer full table)."""
        if self._stream_version is None:
            return
        for stream_map in self.stream_maps:
            if type(stream_map).__name__ == "RemoveRecordTransform":
                continue
            self._tap.write_message(
                ActivateVersionMessage(stream=stream_map.stream_alias, version=self._stream_version)
            )

    # -- LOG_BASED hooks: the work is done in tap_manufacturing/logical -----------------

    def selected_columns(self) -> set[str]:
        """The selected properties: the columns a change record carries."""
        return set(self.get_selected_schema().get("properties", {}))

    def log_bookmark(self) -> tuple[int | None, dict[str, str] | None]:
        """The stored log position and the table's columns then (None without a bookmark)."""
        state = self.stream_state
        if state.get("replication_key") != LSN_PROPERTY:
            return None, None
        value = state.get("replication_key_value")
        if isinstance(value, bool) or not isinstance(value, int):
            return None, None
        columns = state.get("columns")
        return value, dict(columns) if isinstance(columns, dict) else None

    def write_bookmark(self, lsn: int, columns: dict[str, str]) -> None:
        """STATE with the log position (and the columns, to notice rewrites next run)."""
        state = self.stream_state
        # The SDK's run-time marker goes, as it would at the end of the stream, so the SDK's
        # closing STATE equals this one and is not written a second time.
        state.pop("starting_replication_value", None)
        state["replication_key"] = LSN_PROPERTY
        state["replication_key_value"] = lsn
        state["columns"] = dict(columns)
        self.state_manager.is_flushed = False
        self._write_state_message()

    def write_change_lines(self, data: bytes) -> None:
        """Ready-made RECORD lines of changes."""
        self.release_schema()
        self._output.write_lines(data)
        if self._record_counter is not None:
            self._record_counter.increment(data.count(b"\n"))

    def json_text_column(self, name: str) -> bool:
        """Whether a json/jsonb column travels as its text: as the stream's SCHEMA marks it,
        or, for a column the SCHEMA does not have yet, as json_as_text says."""
        known = self.schema.get("properties", {}).get(name)
        if isinstance(known, dict):
            return marked_as_json_text(known)
        return self.settings.json_as_text

    def write_change_schema(self, columns: Sequence[RenderColumn]) -> None:
        """A new SCHEMA when the source table's columns changed (as discovery types them)."""
        self.release_schema()
        known = self.schema.get("properties", {})
        properties = {}
        for column in columns:
            mapped = property_schema(column.type, not_null=False, json_as_text=column.as_text)
            previous = known.get(column.name)
            if previous is not None and previous.get("x-sql-datatype") == mapped["x-sql-datatype"]:
                mapped = previous
            properties[column.name] = mapped
        properties.update(CHANGE_PROPERTIES)
        self.schema["properties"] = properties
        self._tap.write_message(
            SchemaMessage(self.name, dict(self.schema), self.primary_keys, [LSN_PROPERTY])
        )

    def write_snapshot(
        self, connection: psycopg2.extensions.connection, table: TableInfo, snapshot: str, lsn: int
    ) -> int:
        """The table as of an exported snapshot, written like a full-table read (versioned
        records, then ACTIVATE_VERSION), each row with `_sdc_lsn` = the snapshot's position."""
        self._stream_version = self._initialized_at
        extra = {LSN_PROPERTY: f"{int(lsn)}::bigint", DELETED_AT_PROPERTY: "NULL::text"}
        query, params, keys = self._build_query(table, None, fast=True, extra_columns=extra)
        started = time.monotonic()
        connection.set_session(
            isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            cursor = connection.cursor(name=f"tap_manufacturing_{self.name}")
            psycopg2.extensions.register_type(psycopg2.extensions.BYTES, cursor)
            cursor.execute(query, params)
            rows = self._write_fast(cursor, started, keys)
            cursor.close()
            connection.commit()
        except psycopg2.Error as exc:
            raise describe_error(self.source, exc, "read the snapshot") from None
        finally:
            connection.rollback()
            connection.set_session(isolation_level="DEFAULT", readonly="DEFAULT")
        self.release_schema()
        self._write_activate_version()
        self._log_progress(rows, started, final=True)
        return rows


def _root_metadata(entry: dict) -> dict:
    return next(
        (m.get("metadata", {}) for m in entry.get("metadata", []) if not m.get("breadcrumb")), {}
    )


def _replication_method(entry: dict, source: SourceSettings) -> str:
    """The catalog's choice first, then the source's config (see _resolve_replication)."""
    root = _root_metadata(entry)
    return str(
        root.get("replication-method")
        or entry.get("replication_method")
        or root.get("forced-replication-method")
        or source.replication_method
    ).upper()
