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


def merge_sql(table_sql: str, stage: str, columns: Sequence[Column], keys: Sequence[str]) -> str:
    """Last record per key wins: DISTINCT ON (key) ... ORDER BY line DESC, ON CONFLICT."""
    names = ", ".join(quote(c.name) for c in columns)
    if not keys:
        return (
            f"INSERT INTO {table_sql} ({names}) SELECT {names} FROM {stage} ORDER BY {STAGE_LINE}"
        )
    key_list = ", ".join(quote(k) for k in keys)
    updates = [f"{quote(c.name)} = EXCLUDED.{quote(c.name)}" for c in columns if c.name not in keys]
    conflict = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return (
        f"INSERT INTO {table_sql} ({names}) SELECT {names} FROM ("
        f"SELECT DISTINCT ON ({key_list}) * FROM {stage} "
        f"ORDER BY {key_list}, {STAGE_LINE} DESC) deduplicated ORDER BY {STAGE_LINE} "
        f"ON CONFLICT ({key_list}) {conflict}"
    )
