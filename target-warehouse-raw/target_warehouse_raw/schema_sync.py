"""Bring an existing table in line with a stream's schema: add columns, widen types, keys.

Columns are never dropped: a property that disappears from the schema keeps its column, which
is filled with NULL from then on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from target_warehouse_raw.errors import LoadError
from target_warehouse_raw.names import literal, quote
from target_warehouse_raw.types import Column

logger = logging.getLogger("target-warehouse-raw")

_INTEGERS = ("smallint", "integer", "bigint")
_UNBOUNDED_TEXT = ("text", "character varying")


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


def _base(sql_type: str) -> str:
    return re.sub(r"\(.*\)", "", sql_type).strip()


def widening(old: str, new: str) -> str | None:
    """The USING expression to change `old` to the wider `new`, or None to keep `old`.

    Only changes that cannot lose a value are made; anything else keeps the existing type
    and the server casts incoming values to it (a value that does not fit is a clear error).
    """
    if old == new:
        return None
    old_base, new_base = _base(old), _base(new)
    if new in ("text", "jsonb") and not old.endswith("[]"):
        return "to_jsonb({c})" if new == "jsonb" else "{c}::text"
    if (
        new_base == "numeric"
        and new == "numeric"
        and (old_base in _INTEGERS or old_base == "numeric")
    ):
        return "{c}::numeric"
    if new == "bigint" and old in ("smallint", "integer"):
        return "{c}::bigint"
    if new == "integer" and old == "smallint":
        return "{c}::integer"
    if new_base == "character varying" and old_base == "character varying":
        old_n = re.findall(r"\d+", old)
        new_n = re.findall(r"\d+", new)
        if not new_n or (old_n and int(new_n[0]) > int(old_n[0])):
            return "{c}::" + new
    if new == "double precision" and old in ("real", *_INTEGERS):
        return "{c}::double precision"
    return None


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
        using = widening(existing, column.sql_type)
        if using is not None:
            statements.append(
                f"ALTER TABLE {table_sql} ALTER COLUMN {quote(column.name)} "
                f"TYPE {column.sql_type} USING {using.format(c=quote(column.name))}"
            )
        elif existing != column.sql_type:
            logger.warning(
                "Column %s.%s stays %s (schema asks for %s, which is not a lossless widening)",
                table_sql, column.name, existing, column.sql_type,
            )  # fmt: skip
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
