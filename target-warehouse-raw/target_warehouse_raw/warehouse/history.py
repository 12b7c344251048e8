"""The load history table `<schema>._load_history`: one row per stream per run."""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg2.extensions

from target_warehouse_raw.schema.names import quote
from target_warehouse_raw.warehouse.db import table_sql

logger = logging.getLogger("target-warehouse-raw")

HISTORY_TABLE = "_load_history"


def history_sql(schema: str) -> str:
    """The quoted history table name."""
    return table_sql(schema, HISTORY_TABLE)


def ensure_history(cursor: psycopg2.extensions.cursor, schema: str) -> None:
    """Create the schema and the history table if missing (idempotent)."""
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    cursor.execute(
        f"""CREATE TABLE IF NOT EXISTS {history_sql(schema)} (
            id bigserial PRIMARY KEY,
            run_id uuid NOT NULL,
            stream text NOT NULL,
            table_name text NOT NULL,
            load_method text NOT NULL,
            status text NOT NULL,
            rows bigint NOT NULL DEFAULT 0,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            seconds double precision,
            first_line bigint,
            last_line bigint,
            error text,
            target_version text,
            backend_pid integer DEFAULT pg_backend_pid(),
            notes text
        )"""
    )
    # Tables made by earlier versions lack `notes`; look first, so that a current table is
    # never locked by an ALTER (the check command reads it while loads run).
    cursor.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'notes' "
        "AND NOT attisdropped",
        (history_sql(schema),),
    )
    if cursor.fetchone() is None:
        cursor.execute(f"ALTER TABLE {history_sql(schema)} ADD COLUMN IF NOT EXISTS notes text")


def mark_stale_interrupted(
    cursor: psycopg2.extensions.cursor, schema: str, table: str, run_id: str
) -> int:
    """Mark `running` rows of earlier runs of this table `interrupted`.

    Called while holding the table's advisory lock, so their loaders are gone.
    """
    cursor.execute(
        f"""UPDATE {history_sql(schema)}
            SET status = 'interrupted', finished_at = now(),
                seconds = extract(epoch FROM now() - started_at),
                error = coalesce(error, 'the load ended without finishing (killed?)')
            WHERE table_name = %s AND status = 'running' AND run_id <> %s""",
        (table, run_id),
    )
    return cursor.rowcount


def start(
    cursor: psycopg2.extensions.cursor,
    schema: str,
    *,
    run_id: str,
    stream: str,
    table: str,
    load_method: str,
    version: str,
) -> int:
    """Insert this stream's `running` row and return its id."""
    cursor.execute(
        f"""INSERT INTO {history_sql(schema)}
            (run_id, stream, table_name, load_method, status, target_version)
            VALUES (%s, %s, %s, %s, 'running', %s) RETURNING id""",
        (run_id, stream, table, load_method, version),
    )
    return cursor.fetchone()[0]


def finish(
    cursor: psycopg2.extensions.cursor,
    schema: str,
    history_id: int,
    *,
    status: str,
    rows: int,
    first_line: int | None,
    last_line: int | None,
    error: str | None = None,
    notes: str | None = None,
) -> None:
    """Close this stream's row (in the data transaction on success); `notes` says what the
    load noticed that is not an error (columns the stream no longer sends)."""
    cursor.execute(
        f"""UPDATE {history_sql(schema)}
            SET status = %s, rows = %s, finished_at = clock_timestamp(),
                seconds = extract(epoch FROM clock_timestamp() - started_at),
                first_line = %s, last_line = %s, error = %s, notes = %s
            WHERE id = %s""",
        (status, rows, first_line, last_line, error, notes, history_id),
    )


class LoadHistory:
    """This run's rows of the load history, written on the session's control connection
    (autocommit), so that a `running` row is visible while the stream's data transaction is
    still open, and a failure is recorded after that transaction was rolled back."""

    def __init__(
        self,
        cursor: Callable[[], psycopg2.extensions.cursor],
        schema: str,
        *,
        run_id: str,
        target_version: str,
    ) -> None:
        self._cursor = cursor
        self.schema = schema
        self.run_id = run_id
        self.target_version = target_version

    def begin(self, stream: str, table: str, load_method: str) -> int:
        """The stream's `running` row (earlier runs' leftovers of the table marked first).

        Called while holding the table's advisory lock, so those earlier loaders are gone.
        """
        cursor = self._cursor()
        stale = mark_stale_interrupted(cursor, self.schema, table, self.run_id)
        if stale:
            logger.warning(
                "Stream '%s': %d earlier load(s) of %s never finished; marked interrupted",
                stream, stale, table_sql(self.schema, table),
            )  # fmt: skip
        return self.start(stream, table, load_method)

    def start(self, stream: str, table: str, load_method: str) -> int:
        """A `running` row for the stream, without looking at earlier ones."""
        return start(
            self._cursor(),
            self.schema,
            run_id=self.run_id,
            stream=stream,
            table=table,
            load_method=load_method,
            version=self.target_version,
        )

    def record_failure(
        self,
        history_id: int,
        *,
        status: str,
        first_line: int | None,
        last_line: int | None,
        error: str,
    ) -> None:
        """Close the stream's row as failed or interrupted, after its rollback."""
        finish(
            self._cursor(),
            self.schema,
            history_id,
            status=status,
            rows=0,
            first_line=first_line,
            last_line=last_line,
            error=error,
        )
