"""Replication slots and publications on a source: create, inspect, advance, drop.

Everything here talks to the source server and turns what can go wrong into one clear
SourceError naming the source, the slot or publication and what to do (the missing privilege,
the server setting). Replication commands run on psycopg2's LogicalReplicationConnection;
the rest is plain SQL on an ordinary connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from tap_manufacturing.client import SourceError, describe_error
from tap_manufacturing.config import SourceSettings
from tap_manufacturing.discovery import TableInfo
from tap_manufacturing.logical.pgoutput import format_lsn, parse_lsn

REPLICATION_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=iso_8601 -c extra_float_digits=1 "
    "-c bytea_output=hex"
)
"""The walsender renders pgoutput's text values with its own session settings. These make
every value unambiguous text that the same server's type input reads back unchanged (the
tap casts each value back on the server, see render.py)."""

INACTIVE_WAIT_SECONDS = 15.0
"""How long a run waits for the slot to be released by a walsender that is still ending
(after a killed run, the server notices the closed connection within moments)."""


@dataclass(frozen=True)
class SlotInfo:
    """A row of pg_replication_slots."""

    name: str
    plugin: str | None
    database: str | None
    active_pid: int | None
    confirmed_flush: int | None
    restart_lsn: int | None
    wal_status: str | None


def _lsn(text: str | None) -> int | None:
    return None if text is None else parse_lsn(text)


def replication_connection(source: SourceSettings) -> psycopg2.extensions.connection:
    """A logical replication connection to the source database."""
    kwargs = source.connect_kwargs()
    kwargs["options"] = REPLICATION_OPTIONS
    try:
        return psycopg2.connect(
            connection_factory=psycopg2.extras.LogicalReplicationConnection, **kwargs
        )
    except psycopg2.Error as exc:
        text = str(exc)
        if "WAL sender" in text or "walsender" in text:  # PostgreSQL 16+ / earlier wording
            msg = (
                f"{source.describe()}: cannot open a replication connection: user "
                f"{source.user} lacks the REPLICATION privilege (ALTER ROLE {source.user} "
                "REPLICATION), needed for LOG_BASED replication"
            )
            raise SourceError(msg) from None
        raise describe_error(source, exc, "open a replication connection") from None


def slot_info(connection: psycopg2.extensions.connection, slot: str) -> SlotInfo | None:
    """The slot's row, or None when no slot has that name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT slot_name, plugin, database, active_pid, confirmed_flush_lsn::text, "
            "restart_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = %s",
            (slot,),
        )
        row = cursor.fetchone()
    connection.commit()
    if row is None:
        return None
    name, plugin, database, pid, confirmed, restart, status = row
    return SlotInfo(name, plugin, database, pid, _lsn(confirmed), _lsn(restart), status)


def check_slot_usable(source: SourceSettings, info: SlotInfo) -> None:
    """The slot must be a pgoutput slot of this database whose WAL is still there."""
    if info.plugin != "pgoutput" or info.database != source.database:
        msg = (
            f"{source.describe()}: replication slot '{info.name}' belongs to database "
            f"{info.database!r} with plugin {info.plugin!r}, not to {source.database!r} with "
            "pgoutput; set another slot_name for this source"
        )
        raise SourceError(msg)
    if info.wal_status == "lost":
        msg = (
            f"{source.describe()}: replication slot '{info.name}' has lost WAL it needed "
            "(max_slot_wal_keep_size was exceeded); changes are gone: reload the table with "
            "`meltano run --full-refresh ...` (or `meltano state clear ...`), which "
            "re-creates the slot"
        )
        raise SourceError(msg)


def wait_until_inactive(
    connection: psycopg2.extensions.connection, source: SourceSettings, slot: str
) -> SlotInfo | None:
    """The slot's row once no process uses it (bounded wait); an error if one still does."""
    deadline = time.monotonic() + INACTIVE_WAIT_SECONDS
    while True:
        info = slot_info(connection, slot)
        if info is None or info.active_pid is None:
            return info
        if time.monotonic() > deadline:
            msg = (
                f"{source.describe()}: replication slot '{slot}' is in use by server process "
                f"{info.active_pid} (another run of this pipeline?); only one reader at a time"
            )
            raise SourceError(msg)
        time.sleep(0.2)


@dataclass(frozen=True)
class ExportedSnapshot:
    """A slot's consistent point and the snapshot that matches it exactly."""

    consistent_point: int
    snapshot_name: str


@contextmanager
def create_slot(
    source: SourceSettings, slot: str, *, temporary: bool = False
) -> Iterator[ExportedSnapshot]:
    """Create a pgoutput slot and export its snapshot; yields while the snapshot is valid.

    The exported snapshot sees exactly the transactions committed before the slot's
    consistent point, and the slot decodes exactly those committed after it: a table read in
    that snapshot plus the slot's changes lose nothing and repeat nothing. The snapshot can
    be imported (SET TRANSACTION SNAPSHOT) only while this replication connection is open and
    idle, so the caller imports it inside the `with` block. A temporary slot is dropped when
    the block ends.
    """
    connection = replication_connection(source)
    try:
        cursor = connection.cursor()
        kind = "TEMPORARY LOGICAL" if temporary else "LOGICAL"
        try:
            cursor.execute(f"CREATE_REPLICATION_SLOT {slot} {kind} pgoutput (SNAPSHOT 'export')")
            _name, consistent, snapshot, _plugin = cursor.fetchone()
        except psycopg2.Error as exc:
            raise _slot_error(source, slot, exc) from None
        yield ExportedSnapshot(parse_lsn(consistent), snapshot)
    finally:
        connection.close()


def _slot_error(source: SourceSettings, slot: str, exc: psycopg2.Error) -> SourceError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "wal_level" in text:
        hint = (
            "the source server needs wal_level = logical (postgresql.conf, then a restart; "
            "on managed services the logical decoding flag)"
        )
    elif "max_replication_slots" in text or "all replication slots are in use" in text:
        hint = "raise max_replication_slots on the source server, or drop unused slots"
    elif isinstance(exc, psycopg2.errors.InsufficientPrivilege):
        hint = f"ALTER ROLE {source.user} REPLICATION"
    else:
        hint = ""
    suffix = f" ({hint})" if hint else ""
    return SourceError(
        f"{source.describe()}: cannot create replication slot '{slot}': {text}{suffix}"
    )


def drop_slot(connection: psycopg2.extensions.connection, slot: str) -> None:
    """Drop the slot (it must be inactive)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    connection.commit()


def advance_slot(connection: psycopg2.extensions.connection, slot: str, lsn: int) -> None:
    """Confirm `lsn` to the slot: the server may then free the WAL before it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (slot, format_lsn(lsn))
        )
    connection.commit()


def flush_lsn(connection: psycopg2.extensions.connection) -> int:
    """The server's WAL position flushed to disk: where a run stops reading."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_flush_lsn()::text")
        value = cursor.fetchone()[0]
    connection.commit()
    return parse_lsn(value)


def check_wal_level(connection: psycopg2.extensions.connection, source: SourceSettings) -> None:
    """LOG_BASED needs wal_level = logical; say so before touching anything."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('wal_level')")
        level = cursor.fetchone()[0]
    connection.commit()
    if level != "logical":
        msg = (
            f"{source.describe()}: LOG_BASED replication needs wal_level = logical on the "
            f"source server, which has wal_level = {level} (set it in postgresql.conf and "
            "restart the server; on managed services turn on logical decoding)"
        )
        raise SourceError(msg)


_IDENTITY_SQL = """
SELECT c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""


def check_table(
    connection: psycopg2.extensions.connection, source: SourceSettings, table: TableInfo
) -> None:
    """The table must have a primary key and a replica identity that carries it.

    Refused even with REPLICA IDENTITY FULL: without a key the warehouse cannot tell which
    row an update or delete is about (identical rows are allowed and indistinguishable), so
    applying changes would silently diverge. Also, adding a table without replica identity to
    a publication makes the source's own UPDATE and DELETE statements fail, so the check runs
    before the publication is created.
    """
    where = f"{source.describe()}: table {source.schema}.{source.table}"
    with connection.cursor() as cursor:
        cursor.execute(_IDENTITY_SQL, (source.schema, source.table))
        identity = cursor.fetchone()[0]
    connection.commit()
    if not table.primary_key:
        msg = (
            f"{where} has no primary key, which LOG_BASED replication needs to apply updates "
            "and deletes by key (REPLICA IDENTITY FULL does not replace it: identical rows "
            "could not be told apart); add a primary key, or use FULL_TABLE for this source"
        )
        raise SourceError(msg)
    if identity not in ("d", "f"):
        kind = {"n": "NOTHING", "i": "USING INDEX"}.get(identity, identity)
        msg = (
            f"{where} has REPLICA IDENTITY {kind}; LOG_BASED replication needs the primary key "
            f"in every update and delete (ALTER TABLE {source.schema}.{source.table} REPLICA "
            "IDENTITY DEFAULT)"
        )
        raise SourceError(msg)


_PUBLICATION_SQL = """
SELECT p.puballtables OR EXISTS (
         SELECT 1 FROM pg_publication_tables t
         WHERE t.pubname = p.pubname AND t.schemaname = %s AND t.tablename = %s),
       p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate
FROM pg_publication p WHERE p.pubname = %s
"""


def ensure_publication(
    connection: psycopg2.extensions.connection, source: SourceSettings, publication: str
) -> None:
    """Create `publication` FOR TABLE the source's table when missing; check it otherwise."""
    table = f"{_quote(source.schema)}.{_quote(source.table)}"
    with connection.cursor() as cursor:
        cursor.execute(_PUBLICATION_SQL, (source.schema, source.table, publication))
        row = cursor.fetchone()
        if row is None:
            try:
                cursor.execute(f"CREATE PUBLICATION {publication} FOR TABLE {table}")
            except psycopg2.Error as exc:
                connection.rollback()
                hint = ""
                if isinstance(exc, psycopg2.errors.InsufficientPrivilege):
                    hint = (
                        f" (the user needs to own {source.schema}.{source.table} and have CREATE "
                        f"on database {source.database}; or let the owner run: CREATE "
                        f"PUBLICATION {publication} FOR TABLE {source.schema}.{source.table})"
                    )
                text = str(exc).strip().splitlines()[0]
                msg = (
                    f"{source.describe()}: cannot create publication '{publication}': {text}{hint}"
                )
                raise SourceError(msg) from None
            connection.commit()
            return
    connection.commit()
    includes, all_actions = row
    if not includes:
        msg = (
            f"{source.describe()}: publication '{publication}' exists but does not publish "
            f"{source.schema}.{source.table} (ALTER PUBLICATION {publication} ADD TABLE "
            f"{source.schema}.{source.table}, or set another publication_name)"
        )
        raise SourceError(msg)
    if not all_actions:
        msg = (
            f"{source.describe()}: publication '{publication}' does not publish every insert, "
            f"update, delete and truncate (ALTER PUBLICATION {publication} SET (publish = "
            "'insert, update, delete, truncate'))"
        )
        raise SourceError(msg)


def drop_publication(connection: psycopg2.extensions.connection, publication: str) -> bool:
    """Drop the publication if it exists; True when it did."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
        exists = cursor.fetchone() is not None
        if exists:
            cursor.execute(f"DROP PUBLICATION {publication}")
    connection.commit()
    return exists


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
