"""One run of a LOG_BASED stream: a snapshot, or the changes since the bookmark.

The rules, and why:

- No bookmark (first run, `--full-refresh`, cleared state): the slot is (re-)created with an
  exported snapshot and the table is read in that snapshot, written exactly like a full-table
  read (versioned records, then ACTIVATE_VERSION), then STATE at the slot's consistent point.
  A slot left from earlier is dropped first: without a bookmark nothing in it is wanted, and
  dropping it frees the WAL it holds at once.
- A bookmark: the slot must exist (else a clear error: its changes are gone). The tap first
  confirms the bookmark to the slot (pg_replication_slot_advance), the one position Meltano
  has stored, never anything this run writes. A crash anywhere re-sends what follows the
  stored bookmark; re-sent changes are full row images applied by key, so harmless.
- TRUNCATE, or a column change that rewrote existing rows' values outside the log: every
  change before it is written, then the table is read again in the snapshot of a temporary
  slot (consistent point N), written like the first snapshot, with STATE at N. The next run
  starts there (a start position past the slot's confirmed one skips to it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import psycopg2
import psycopg2.extensions

from tap_manufacturing.client import SourceError, connect, describe_error
from tap_manufacturing.config import SourceSettings, TapSettings
from tap_manufacturing.discovery import TableInfo, TableNotFound, describe_table, describe_type
from tap_manufacturing.logical import slots
from tap_manufacturing.logical.changes import (
    ChangeOutput,
    ChangeReader,
    Outcome,
    needs_snapshot,
    signature,
)
from tap_manufacturing.logical.pgoutput import format_lsn
from tap_manufacturing.logical.render import RenderColumn, quote_ident

logger = logging.getLogger("tap-manufacturing")

_HAS_DEFAULT_SQL = """
SELECT a.atthasdef OR a.atthasmissing FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attname = %s AND NOT a.attisdropped
"""


class LogBasedStream(ChangeOutput, Protocol):
    """What a stream offers the LOG_BASED run (see streams.py)."""

    source: SourceSettings
    settings: TapSettings

    @property
    def primary_keys(self) -> list[str]: ...

    def selected_columns(self) -> set[str] | None: ...

    def log_bookmark(self) -> tuple[int | None, dict[str, str] | None]: ...

    def write_snapshot(
        self, connection: psycopg2.extensions.connection, table: TableInfo, snapshot: str, lsn: int
    ) -> int: ...


def sync_log_based(stream: LogBasedStream) -> None:
    """Write one LOG_BASED run of `stream` (see the module docstring)."""
    source = stream.source
    with connect(source) as connection:
        try:
            _sync(stream, connection)
        except TableNotFound as exc:
            raise SourceError(f"{source.describe()}: {exc}") from None
        except psycopg2.Error as exc:
            raise describe_error(source, exc, "run LOG_BASED replication") from None


def _sync(stream: LogBasedStream, connection: psycopg2.extensions.connection) -> None:
    source = stream.source
    slots.check_wal_level(connection, source)
    table = describe_table(connection, source)
    slots.check_table(connection, source, table)
    slots.ensure_publication(connection, source, source.publication_name)
    bookmark, known = stream.log_bookmark()
    shape = signature([RenderColumn(c.name, c.type) for c in table.columns])
    if bookmark is None:
        _first_snapshot(stream, connection, table, shape)
        return
    info = slots.wait_until_inactive(connection, source, source.slot_name)
    if info is None:
        msg = (
            f"{source.describe()}: replication slot '{source.slot_name}' does not exist, "
            f"but the state holds a bookmark at {format_lsn(bookmark)}: the changes since "
            "then are gone. Reload the table from a new snapshot: `meltano run "
            "--full-refresh tap-manufacturing target-warehouse-raw` (or `meltano state "
            "clear <state id>` and run again)"
        )
        raise SourceError(msg)
    slots.check_slot_usable(source, info)
    reason = needs_snapshot(known or shape, shape, _has_default(connection, source))
    if reason is not None:
        _resnapshot(stream, connection, table, shape, reason)
        return
    if info.confirmed_flush is not None and bookmark > info.confirmed_flush:
        slots.advance_slot(connection, source.slot_name, bookmark)
    outcome = _read_changes(stream, connection, table, bookmark, known or shape)
    if outcome.resnapshot is not None:
        table = describe_table(connection, source)
        shape = signature([RenderColumn(c.name, c.type) for c in table.columns])
        _resnapshot(stream, connection, table, shape, outcome.resnapshot)


def _first_snapshot(
    stream: LogBasedStream,
    connection: psycopg2.extensions.connection,
    table: TableInfo,
    shape: dict[str, str],
) -> None:
    source = stream.source
    existing = slots.wait_until_inactive(connection, source, source.slot_name)
    if existing is not None:
        logger.info(
            "Stream '%s': no bookmark; dropping replication slot '%s' to take a new snapshot",
            stream.name,
            source.slot_name,
        )
        slots.drop_slot(connection, source.slot_name)
    with slots.create_slot(source, source.slot_name) as exported:
        stream.write_snapshot(connection, table, exported.snapshot_name, exported.consistent_point)
    stream.write_bookmark(exported.consistent_point, shape)


def _resnapshot(
    stream: LogBasedStream,
    connection: psycopg2.extensions.connection,
    table: TableInfo,
    shape: dict[str, str],
    reason: str,
) -> None:
    source = stream.source
    logger.info("Stream '%s': %s; reading the table again from a new snapshot", stream.name,
                reason)  # fmt: skip
    temporary = f"{source.slot_name[:40]}_resync_{int(time.time() * 1000) % 10**9}"
    with slots.create_slot(source, temporary, temporary=True) as exported:
        stream.write_snapshot(connection, table, exported.snapshot_name, exported.consistent_point)
    stream.write_bookmark(exported.consistent_point, shape)


def _read_changes(
    stream: LogBasedStream,
    connection: psycopg2.extensions.connection,
    table: TableInfo,
    bookmark: int,
    known: dict[str, str],
) -> Outcome:
    source = stream.source
    started = time.monotonic()
    stop = slots.flush_lsn(connection)
    selected = stream.selected_columns()
    excluded = set() if selected is None else {c.name for c in table.columns} - selected
    # The SCHEMA stays held back until the first record (or schema change): a run that
    # fails before it leaves no SCHEMA a target could take for an empty stream.
    replication = slots.replication_connection(source)
    try:
        cursor = replication.cursor()
        cursor.start_replication(
            slot_name=source.slot_name,
            decode=False,
            start_lsn=bookmark,
            options={"proto_version": "1", "publication_names": source.publication_name},
        )
        reader = ChangeReader(
            cursor=cursor,
            connection=connection,
            output=stream,
            table_oid=_table_oid(connection, source),
            table_sql=_table_sql(source),
            key=stream.primary_keys,
            known=known,
            excluded=excluded,
            describe=lambda oid, typmod: describe_type(connection, oid, typmod),
            has_default=_has_default(connection, source),
            as_text=stream.json_text_column,
            start_lsn=bookmark,
            stop_lsn=stop,
            batch_rows=stream.settings.fetch_size,
            state_interval=stream.settings.state_interval,
            max_wait=stream.settings.log_based_max_wait,
            progress_interval=stream.settings.progress_interval,
        )
        outcome = reader.run()
    except psycopg2.Error as exc:
        raise describe_error(source, exc, f"read replication slot '{source.slot_name}'") from None
    finally:
        replication.close()
    seconds = max(time.monotonic() - started, 1e-9)
    logger.info(
        "Finished changes of stream '%s': %d changes in %.1f s (%.0f changes/s), from %s to %s",
        stream.name,
        outcome.changes,
        seconds,
        outcome.changes / seconds,
        format_lsn(bookmark),
        format_lsn(outcome.position),
    )
    return outcome


def _table_oid(connection: psycopg2.extensions.connection, source: SourceSettings) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::regclass::oid", (_table_sql(source),))
        oid = int(cursor.fetchone()[0])
    connection.commit()
    return oid


def _table_sql(source: SourceSettings) -> str:
    return f"{quote_ident(source.schema)}.{quote_ident(source.table)}"


def _has_default(
    connection: psycopg2.extensions.connection, source: SourceSettings
) -> Callable[[str], bool]:
    """Whether a column has a default (or a "missing" value given to existing rows)."""
    table = _table_sql(source)

    def has_default(column: str) -> bool:
        with connection.cursor() as cursor:
            cursor.execute(_HAS_DEFAULT_SQL, (table, column))
            row = cursor.fetchone()
        connection.commit()
        return bool(row and row[0])

    return has_default
