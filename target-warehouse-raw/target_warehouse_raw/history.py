"""The load history table `<schema>._load_history`: one row per stream per run."""

from __future__ import annotations

import psycopg2.extensions

from target_warehouse_raw.db import table_sql
from target_warehouse_raw.names import quote

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
            backend_pid integer DEFAULT pg_backend_pid()
        )"""
    )


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
) -> None:
    """Close this stream's row (in the data transaction on success)."""
    cursor.execute(
        f"""UPDATE {history_sql(schema)}
            SET status = %s, rows = %s, finished_at = clock_timestamp(),
                seconds = extract(epoch FROM clock_timestamp() - started_at),
                first_line = %s, last_line = %s, error = %s
            WHERE id = %s""",
        (status, rows, first_line, last_line, error, history_id),
    )
