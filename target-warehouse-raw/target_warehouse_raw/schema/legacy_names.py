"""Tables and columns that earlier versions created under a mapped name, found on upgrade.

Earlier versions lower-cased names and replaced reserved words and other characters
(`order` -> `order_`, `Customer Name` -> `customer_name`, stream `public-orders` -> table
`public_orders`); names now land as the source spells them (names.py). Left alone, the first
load after an upgrade would create a second table, or add a second, empty-until-now column
beside the old one, and every query would silently read the stale one. So before a stream's
first load the target looks for them:

- nothing found (a new table, or one created under today's names): nothing happens;
- found, and `rename_legacy_names` is off (the default): the stream is refused before
  anything is written, with a message naming the old and the new names and the two fixes.
  Renaming changes what every query and dbt model must say, so it is the user's call;
- found, and `rename_legacy_names` is on: the table and columns are renamed (`ALTER TABLE
  ... RENAME`) in the short schema-change transaction before the load, and the load history
  follows the table's new name. Views, grants, indexes and comments stay attached: PostgreSQL
  tracks them by the table's and column's identity, not by name.

A column name counts as legacy only when the live table has it, lacks the new name, and no
property of the stream is called that today (a stream may really have both `order` and
`order_`). A table name counts when today's table does not exist and the load history does not
show the old one loaded by other streams only (`public-orders` and `public_orders` may both be
streams). The old table name is the stream's name under the earlier rule, without the hash
suffix that rule added when two streams of one run mapped to the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg2.extensions

from target_warehouse_raw.schema.columns import Column
from target_warehouse_raw.schema.names import legacy_identifier, literal, quote
from target_warehouse_raw.warehouse.db import table_sql
from target_warehouse_raw.warehouse.history import history_sql


class LegacyNamesFound(ValueError):
    """Earlier versions' names are in the warehouse and renaming them was not asked for."""


@dataclass(frozen=True)
class Rename:
    """One table or column to rename from an earlier version's name to today's."""

    what: str  # "table" or "column"
    old: str
    new: str


def _columns(cursor: psycopg2.extensions.cursor, relation: str) -> set[str] | None:
    """The column names of a table, or None when it does not exist."""
    cursor.execute("SELECT to_regclass(%s)::oid", (relation,))
    oid = cursor.fetchone()[0]
    if oid is None:
        return None
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped",
        (oid,),
    )
    return {name for (name,) in cursor.fetchall()}


def _loaded_by_other_streams_only(
    cursor: psycopg2.extensions.cursor, schema: str, table: str, stream: str
) -> bool:
    """True when the load history shows `table` loaded by other streams only: then it is
    theirs (streams `public-orders` and `public_orders` may both exist), not a legacy name."""
    cursor.execute(
        f"SELECT coalesce(bool_or(stream = %s), false), coalesce(bool_or(stream <> %s), false) "
        f"FROM {history_sql(schema)} WHERE table_name = %s",
        (stream, stream, table),
    )
    mine, others = cursor.fetchone()
    return bool(others and not mine)


def find(
    cursor: psycopg2.extensions.cursor,
    schema: str,
    stream: str,
    table: str,
    columns: Sequence[Column],
) -> list[Rename]:
    """The renames that would carry an earlier version's table and columns to today's names."""
    found: list[Rename] = []
    live = _columns(cursor, table_sql(schema, table))
    if live is None:
        old_table = legacy_identifier(stream)
        if old_table == table:
            return []
        live = _columns(cursor, table_sql(schema, old_table))
        if live is None or _loaded_by_other_streams_only(cursor, schema, old_table, stream):
            return []
        found.append(Rename("table", old_table, table))
    current = {column.name for column in columns}
    for column in columns:
        old = column.legacy_name
        if old and old not in current and old in live and column.name not in live:
            found.append(Rename("column", old, column.name))
    return found


def _renames_sql(schema: str, table: str, renames: Sequence[Rename]) -> list[str]:
    """ALTER TABLE ... RENAME statements in the order `find` gives: the table first, then its
    columns under the table's new name, `table`."""
    result = []
    for rename in renames:
        if rename.what == "table":
            result.append(f"ALTER TABLE {table_sql(schema, rename.old)} RENAME TO {quote(table)}")
        else:
            result.append(
                f"ALTER TABLE {table_sql(schema, table)} RENAME COLUMN {quote(rename.old)} "
                f"TO {quote(rename.new)}"
            )
    return result


def statements(schema: str, table: str, renames: Sequence[Rename]) -> list[str]:
    """The renames' DDL, plus the load history's update that keeps the check command's
    table names right after a table rename."""
    result = _renames_sql(schema, table, renames)
    for rename in renames:
        if rename.what == "table":
            result.append(
                f"UPDATE {history_sql(schema)} SET table_name = {literal(rename.new)} "
                f"WHERE table_name = {literal(rename.old)}"
            )
    return result


def refusal(schema: str, table: str, renames: Sequence[Rename]) -> str:
    """Why the stream is refused, and the two ways forward."""
    names = ", ".join(
        f"{rename.what} {quote(rename.old)} (now {quote(rename.new)})" for rename in renames
    )
    second = "table" if any(rename.what == "table" for rename in renames) else "column"
    return (
        f"schema {quote(schema)} holds {names}, named by an earlier version of "
        f"target-warehouse-raw, which changed names that PostgreSQL can hold; names now land "
        f"exactly as the source spells them, and loading would create a second {second} "
        f"beside the old one, so nothing was loaded. Set rename_legacy_names to true to have "
        f"the target rename them before the load (views and grants keep working), or rename "
        f"them yourself: {'; '.join(_renames_sql(schema, table, renames))}"
    )


def renames_for(
    cursor: psycopg2.extensions.cursor,
    schema: str,
    stream: str,
    table: str,
    columns: Sequence[Column],
    *,
    rename: bool,
) -> list[str]:
    """The statements that carry earlier versions' names over before a load (none when
    there are none); LegacyNamesFound when there are some and `rename` is off."""
    found = find(cursor, schema, stream, table, columns)
    if not found:
        return []
    if not rename:
        raise LegacyNamesFound(refusal(schema, table, found))
    return statements(schema, table, found)
