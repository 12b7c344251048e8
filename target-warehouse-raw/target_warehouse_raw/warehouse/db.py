"""Connections and small SQL helpers. Never builds or logs a DSN (it would hold a password)."""

from __future__ import annotations

import hashlib

import psycopg2
import psycopg2.extensions

from target_warehouse_raw.config import ConnectionSettings
from target_warehouse_raw.errors import LoadError
from target_warehouse_raw.schema.names import literal, quote

APP = "target-warehouse-raw"


class WarehouseUnreachableError(ConnectionError):
    """The warehouse refused or did not answer; the message has no secrets."""


def application_name(stream: str | None, phase: str) -> str:
    """What operators see in pg_stat_activity: target-warehouse-raw:<stream>:<phase>."""
    name = f"{APP}:{stream}:{phase}" if stream is not None else f"{APP}:{phase}"
    return name[:63]


def connect(
    settings: ConnectionSettings, stream: str | None, phase: str
) -> psycopg2.extensions.connection:
    """Open a session in UTC with ISO styles, so typed values read back exactly."""
    try:
        conn = psycopg2.connect(**settings.connect_kwargs(application_name(stream, phase)))
    except psycopg2.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WarehouseUnreachableError(
            f"cannot connect to {settings.describe()}: {first}"
        ) from None
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'")
    conn.autocommit = False
    return conn


def set_phase(cursor: psycopg2.extensions.cursor, stream: str | None, phase: str) -> None:
    """Show the current phase in pg_stat_activity (transactional, like any SET)."""
    cursor.execute(f"SET application_name = {literal(application_name(stream, phase))}")


def table_sql(schema: str, table: str) -> str:
    """schema.table, quoted."""
    return f"{quote(schema)}.{quote(table)}"


def advisory_key(schema: str, table: str) -> int:
    """A stable signed 64-bit key for pg_advisory_xact_lock on one table."""
    digest = hashlib.sha256(f"{APP}:{schema}.{table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def server_message(exc: BaseException) -> str:
    """The server's primary error message (no statement text, which could be large)."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        return primary
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def lost_connection(
    exc: BaseException, stream: str | None, *, doing: str = "", line: int | None = None
) -> LoadError:
    """The connection broke: say so, with the first error of the chain (ROLLBACK TO SAVEPOINT
    on a dead connection only adds "cursor already closed")."""
    root: BaseException = exc
    while isinstance(root.__context__, psycopg2.Error):
        root = root.__context__
    during = f" during {doing}" if doing else ""
    problem = f"lost the connection to the warehouse{during} ({server_message(root)})"
    if doing == "commit":
        problem += "; the table holds its complete old or complete new content"
    return LoadError(problem, stream=stream, line=line)


def database_error(
    exc: BaseException,
    conn: psycopg2.extensions.connection,
    stream: str | None,
    *,
    line: int | None = None,
    doing: str = "",
) -> LoadError:
    """A database error as one clear LoadError naming the stream (no traceback)."""
    if isinstance(exc, LoadError):
        return exc
    if conn.closed or isinstance(exc, psycopg2.InterfaceError):
        return lost_connection(exc, stream, doing=doing, line=line)
    return LoadError(server_message(exc), stream=stream, line=line)
