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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.extensions
from singer_sdk import Stream
from singer_sdk.helpers._catalog import get_selected_schema
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import ActivateVersionMessage, CatalogEntry
from singer_sdk.streams.core import REPLICATION_INCREMENTAL

from tap_manufacturing.client import SourceError, connect, describe_error, prefetched
from tap_manufacturing.config import SourceSettings
from tap_manufacturing.discovery import TableInfo, TableNotFound, describe_table
from tap_manufacturing.output import DECODER, SingerOutput
from tap_manufacturing.sinks import BatchFiles, RecordLines, RowSink
from tap_manufacturing.types import marked_as_json_text, select_expression

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
        self.catalog_entry = catalog_entry
        self.source = source
        self.settings = tap.settings
        self._schema_pending = False
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
        failed read for an empty table. `_release_schema` writes it.
        """
        self._schema_pending = True

    def _release_schema(self) -> None:
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
        root = next(
            (m.get("metadata", {}) for m in entry.get("metadata", []) if not m.get("breadcrumb")),
            {},
        )
        method = str(
            root.get("replication-method")
            or entry.get("replication_method")
            or root.get("forced-replication-method")
            or self.source.replication_method
        ).upper()
        key = root.get("replication-key") or entry.get("replication_key")
        if method == "INCREMENTAL" and not key:
            key = self.source.replication_key
        self.forced_replication_method = method
        self.replication_key = key if method == "INCREMENTAL" else None

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

        With `batch_config` set, the fast path writes the BATCH files itself (see sinks.py),
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
        self, table: TableInfo, starting_value: Any, *, fast: bool
    ) -> tuple[str, list, tuple[bytes, ...] | None]:
        """The read query, its parameters, and the JSON keys when rows come as arrays.

        Each row comes as the JSON object row_to_json renders, or, on the fast path with the C
        module at hand, as the array json_build_array renders, which costs the server about a
        third less; _rekey puts the keys back, giving the same objects (see _rekey.c).
        """
        properties = self.get_selected_schema().get("properties", {})
        selected = list(properties)
        expressions = []
        for name in selected:
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
        key = self.replication_key
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
        full_table = self.replication_method == "FULL_TABLE"
        if full_table:
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
            starting = self.get_starting_replication_key_value(context)
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
        self._release_schema()  # an empty table: the read succeeded with no rows
        if full_table:
            self._write_activate_version()
        self._log_progress(rows, started, final=True)

    def _read_slow(self, cursor: psycopg2.extensions.cursor) -> Iterable[Record]:
        """Decoded rows for the SDK's per-record path (maps, flattening, dry runs)."""
        for batch in prefetched(cursor, self.settings.fetch_size):
            self._release_schema()
            for row in batch:
                yield DECODER.decode(row[0])

    def _sink(self) -> RowSink:
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
        key = self.replication_key
        fetch = self.settings.fetch_size
        if key:
            fetch = min(fetch, self.settings.state_interval)
        rows = 0
        since_state = 0
        next_log = started + self.settings.progress_interval
        try:
            for batch in prefetched(cursor, fetch):
                self._release_schema()
                extracted = datetime.datetime.now(datetime.timezone.utc).isoformat()
                if keys is None:
                    sink.write([row[0] for row in batch], extracted)
                else:
                    assert _rekey is not None
                    sink.write(_rekey.objects(batch, keys), extracted)
                rows += len(batch)
                since_state += len(batch)
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
