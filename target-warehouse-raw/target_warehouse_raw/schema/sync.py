"""Bring an existing table in line with a stream's schema: add columns, follow types, keys.

Columns are never dropped: a property that disappears from the schema keeps its column, which
is filled with NULL from then on. Type changes follow type_change.plan: followed when the new
type holds every value exactly, refused otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from target_warehouse_raw.errors import LoadError
from target_warehouse_raw.schema import type_change
from target_warehouse_raw.schema.columns import Column
from target_warehouse_raw.schema.names import literal, quote

logger = logging.getLogger("target-warehouse-raw")


@dataclass(frozen=True)
class TableShape:
    """The live table as the server has it."""

    columns: dict[str, str]  # name -> format_type
    primary_key: tuple[str, ...]
    primary_key_name: str | None


def read_shape(cursor: psycopg2.extensions.cursor, table_sql: str) -> TableShape | None:
    """Columns and primary key of a table, or None when it does not exist."""
    cursor.execute("SELECT to_regclass(%s)::oid", (table_sql,))
    oid = cursor.fetchone()[0]
    if oid is None:
        return None
    cursor.execute(
        """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
           WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum""",
        (oid,),
    )
    columns = dict(cursor.fetchall())
    cursor.execute(
        """SELECT c.conname, array_agg(a.attname ORDER BY k.ord)
           FROM pg_constraint c
           CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
           WHERE c.conrelid = %s AND c.contype = 'p' GROUP BY c.conname""",
        (oid,),
    )
    row = cursor.fetchone()
    return TableShape(columns, tuple(row[1]) if row else (), row[0] if row else None)


class TypeChangeRefused(ValueError):
    """A column type change that would round, truncate or fail on values (see refusal)."""


def refusal(table_sql: str, column: str, change: type_change.TypeChange) -> str:
    """Why a type change is refused, and what the user can do about it."""
    if type_change.holds(change.old, change.new):
        why = (
            f"{change.new} cannot hold every value the column holds, and keeping {change.old} "
            f"would not mirror the source"
        )
    else:
        why = (
            f"neither type holds every value of the other: following would round or fail on "
            f"the values the table holds, keeping {change.old} would round or fail on the new ones"
        )
    return (
        f"column {quote(column)} of {table_sql} is {change.old} in the warehouse and the stream "
        f"now sends {change.new}: {why}; nothing was loaded. To follow the source, change the "
        f"column yourself (ALTER TABLE {table_sql} ALTER COLUMN {quote(column)} TYPE "
        f"{change.new} USING ...) or drop the table so that the next full load recreates it"
    )


def live_types_kept(shape: TableShape | None, columns: Sequence[Column]) -> dict[str, str]:
    """Live column types that stay as they are although the schema says otherwise."""
    if shape is None:
        return {}
    kept = {}
    for column in columns:
        existing = shape.columns.get(column.name)
        if existing is None:
            continue
        change = type_change.plan(existing, column.sql_type, exact=column.exact_type)
        if change.action == "keep":
            kept[column.name] = existing
    return kept


def column_ddl(column: Column) -> str:
    """`"name" type` for CREATE TABLE / ADD COLUMN."""
    return f"{quote(column.name)} {column.sql_type}"


def create_table_sql(table_sql: str, columns: Sequence[Column], keys: Sequence[str]) -> str:
    """CREATE TABLE IF NOT EXISTS with the key columns as primary key."""
    parts = [column_ddl(column) for column in columns]
    if keys:
        parts.append(f"PRIMARY KEY ({', '.join(quote(k) for k in keys)})")
    return f"CREATE TABLE IF NOT EXISTS {table_sql} ({', '.join(parts)})"


def changes(
    shape: TableShape,
    table_sql: str,
    columns: Sequence[Column],
    keys: Sequence[str],
    *,
    change_keys: bool,
) -> list[str]:
    """DDL statements that make the live table fit the schema (additive only)."""
    statements = []
    for column in columns:
        existing = shape.columns.get(column.name)
        if existing is None:
            statements.append(f"ALTER TABLE {table_sql} ADD COLUMN {column_ddl(column)}")
            continue
        change = type_change.plan(existing, column.sql_type, exact=column.exact_type)
        if change.action == "follow":
            statements.append(
                f"ALTER TABLE {table_sql} ALTER COLUMN {quote(column.name)} "
                f"TYPE {change.new} USING {change.using(quote(column.name))}"
            )
        elif change.action == "keep":
            logger.info(
                "Column %s.%s stays %s: it holds every %s value the stream's JSON Schema allows",
                table_sql, column.name, existing, change.new,
            )  # fmt: skip
        elif change.action == "refuse":
            raise TypeChangeRefused(refusal(table_sql, column.name, change))
    if change_keys and tuple(keys) != shape.primary_key:
        if shape.primary_key_name:
            statements.append(
                f"ALTER TABLE {table_sql} DROP CONSTRAINT {quote(shape.primary_key_name)}"
            )
        if keys:
            statements.append(
                f"ALTER TABLE {table_sql} ADD PRIMARY KEY ({', '.join(quote(k) for k in keys)})"
            )
    return statements


def run_short_ddl(
    conn: psycopg2.extensions.connection,
    statements: Sequence[str],
    *,
    lock_timeout: float,
    retries: int,
    stream: str,
) -> None:
    """Run DDL in its own short transaction with lock_timeout, retrying when the lock waits.

    This is the only moment a reader of the table can be blocked, for at most lock_timeout.
    """
    if not statements:
        return
    for attempt in range(retries + 1):
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    f"SET LOCAL lock_timeout = {literal(f'{int(lock_timeout * 1000)}ms')}"
                )
                for statement in statements:
                    logger.info("Schema change for stream '%s': %s", stream, statement)
                    cursor.execute(statement)
            conn.commit()
            return
        except psycopg2.errors.LockNotAvailable:
            conn.rollback()
            logger.warning(
                "Stream '%s': table busy, schema change waits (try %d of %d)",
                stream, attempt + 1, retries + 1,
            )  # fmt: skip
            time.sleep(min(2.0**attempt * 0.2, 5.0))
        except psycopg2.Error as exc:
            conn.rollback()
            raise LoadError(
                f"schema change failed: {exc.diag.message_primary}", stream=stream
            ) from None
    raise LoadError(
        f"could not take the lock for a schema change after {retries + 1} tries "
        f"(lock_timeout {lock_timeout}s each)",
        stream=stream,
    )
