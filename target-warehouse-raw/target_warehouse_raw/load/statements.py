"""SQL text for one stream's batches: COPY straight into the table, or through a staging table.

Pure string building; landing.py runs them. Rows are COPY text lines (copy_text/) in the
order of `columns`. The staging table (temporary, typed like the live table's columns, plus
the input line) is only used where rows must be merged: upsert, and a replace whose batch
repeats a key (the last record per key wins).
"""

from __future__ import annotations

from collections.abc import Sequence

from target_warehouse_raw.schema.columns import Column
from target_warehouse_raw.schema.names import quote

STAGE_LINE = "_twr_line"


def copy_sql(table_sql: str, columns: Sequence[Column]) -> str:
    """COPY straight into the live table."""
    return f"COPY {table_sql} ({', '.join(quote(c.name) for c in columns)}) FROM STDIN"


def stage_name(fingerprint: str) -> str:
    """A temporary staging table per column set."""
    return f"pg_temp._twr_stage_{fingerprint}"


def stage_ddl(stage: str, table_sql: str, columns: Sequence[Column]) -> str:
    """The staging table: the input line plus the live table's columns, with their types."""
    names = ", ".join(quote(c.name) for c in columns)
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {stage.removeprefix('pg_temp.')} AS "
        f"SELECT NULL::bigint AS {STAGE_LINE}, {names} FROM {table_sql} WITH NO DATA"
    )


def stage_copy_sql(stage: str, columns: Sequence[Column]) -> str:
    """COPY into the staging table (each row starts with its input line)."""
    names = ", ".join(quote(c.name) for c in columns)
    return f"COPY {stage} ({STAGE_LINE}, {names}) FROM STDIN"


def _last_per_key(stage: str, keys: Sequence[str]) -> str:
    """The stage's last row per key, by input line."""
    key_list = ", ".join(quote(k) for k in keys)
    return (
        f"(SELECT DISTINCT ON ({key_list}) * FROM {stage} ORDER BY {key_list}, {STAGE_LINE} DESC)"
    )


def merge_sql(
    table_sql: str,
    stage: str,
    columns: Sequence[Column],
    keys: Sequence[str],
    *,
    where: str = "",
    keep: Sequence[str] = (),
) -> str:
    """Last record per key wins: DISTINCT ON (key) ... ORDER BY line DESC, ON CONFLICT.

    `where` filters the last rows (e.g. no deletes); `keep` names columns an existing row
    keeps (their values were not sent).
    """
    names = ", ".join(quote(c.name) for c in columns)
    if not keys:
        return (
            f"INSERT INTO {table_sql} ({names}) SELECT {names} FROM {stage} ORDER BY {STAGE_LINE}"
        )
    key_list = ", ".join(quote(k) for k in keys)
    updates = [
        f"{quote(c.name)} = EXCLUDED.{quote(c.name)}"
        for c in columns
        if c.name not in keys and c.name not in keep
    ]
    conflict = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    filtered = f" WHERE {where}" if where else ""
    return (
        f"INSERT INTO {table_sql} ({names}) SELECT {names} FROM "
        f"{_last_per_key(stage, keys)} deduplicated{filtered} ORDER BY {STAGE_LINE} "
        f"ON CONFLICT ({key_list}) {conflict}"
    )


def delete_changes_sql(table_sql: str, stage: str, keys: Sequence[str], deleted: str) -> str:
    """Remove the rows whose last change in the stage is a delete (`deleted` is set)."""
    match = " AND ".join(f"t.{quote(k)} = last.{quote(k)}" for k in keys)
    return (
        f"DELETE FROM {table_sql} t USING {_last_per_key(stage, keys)} last "
        f"WHERE {match} AND last.{quote(deleted)} IS NOT NULL"
    )


def mark_changes_sql(
    table_sql: str, stage: str, keys: Sequence[str], deleted: str, marked: Sequence[str]
) -> str:
    """Set `deleted` (and the other `marked` columns) on rows whose last change deletes them."""
    match = " AND ".join(f"t.{quote(k)} = last.{quote(k)}" for k in keys)
    sets = ", ".join(f"{quote(c)} = last.{quote(c)}" for c in (deleted, *marked))
    return (
        f"UPDATE {table_sql} t SET {sets} FROM {_last_per_key(stage, keys)} last "
        f"WHERE {match} AND last.{quote(deleted)} IS NOT NULL"
    )


def new_rows_ddl(stage: str, table_sql: str, keys: Sequence[str]) -> list[str]:
    """The replace's staging table: the live table's columns and types, its key, dropped at
    the commit (or the rollback)."""
    name = stage.removeprefix("pg_temp.")
    key_list = ", ".join(quote(k) for k in keys)
    return [
        f"CREATE TEMP TABLE {name} (LIKE {table_sql}) ON COMMIT DROP",
        f"ALTER TABLE {stage} ADD PRIMARY KEY ({key_list})",
    ]


def _same_row(keys: Sequence[str]) -> str:
    """Staged row `s` and live row `t` are the same row, byte for byte.

    `*=` is PostgreSQL's record image equality, the comparison REFRESH MATERIALIZED VIEW
    CONCURRENTLY uses: equal only when every column's stored bytes are equal, so 1.0 and
    1.00, -0 and 0, or two spellings of the same json document count as changes (a value
    that is `=` but reads differently is still replaced). The key match lets the server
    join by key (`*=` alone cannot be hashed).
    """
    match = " AND ".join(f"s.{quote(k)} = t.{quote(k)}" for k in keys)
    return f"{match} AND (s.*) OPERATOR(pg_catalog.*=) (t.*)"


def delete_changed_sql(table_sql: str, stage: str, keys: Sequence[str]) -> str:
    """Delete the live rows that the new rows do not repeat byte for byte."""
    return (
        f"DELETE FROM {table_sql} t WHERE NOT EXISTS "
        f"(SELECT FROM {stage} s WHERE {_same_row(keys)})"
    )


def count_changed_sql(table_sql: str, stage: str, keys: Sequence[str]) -> str:
    """How many staged rows the live table does not hold byte for byte."""
    return (
        f"SELECT count(*) FILTER (WHERE NOT EXISTS "
        f"(SELECT FROM {table_sql} t WHERE {_same_row(keys)})), count(*) FROM {stage} s"
    )


def insert_new_sql(table_sql: str, stage: str, columns: Sequence[str], keys: Sequence[str]) -> str:
    """Insert the new rows whose key the live table no longer holds (after delete_changed)."""
    names = ", ".join(quote(c) for c in columns)
    match = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in keys)
    return (
        f"INSERT INTO {table_sql} ({names}) SELECT {names} FROM {stage} s "
        f"WHERE NOT EXISTS (SELECT FROM {table_sql} t WHERE {match})"
    )
