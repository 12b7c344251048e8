"""SQL text for one stream's batch: landing table and the INSERT ... SELECT that converts it.

Pure string building; the loader runs them. The landing table holds one row per record:
`(line bigint, rec jsonb, version bigint, extracted_at text)`, read as alias `l`. Values are
converted in one pass per record by `jsonb_to_record(l.rec) AS r(<key> <type>, ...)` (see
types.py); records were validated against the schema in Python before they were landed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from target_warehouse_raw.names import quote
from target_warehouse_raw.types import Column, render_expr, render_field

LANDING = "pg_temp._twr_landing"
LANDING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS _twr_landing "
    "(line bigint NOT NULL, rec jsonb, version bigint, extracted_at text)"
)
COPY_SQL = f"COPY {LANDING} (line, rec, version, extracted_at) FROM STDIN"
LINE_ALIAS = "_twr_line__"
RECORD_ALIAS = "r"
WHERE = "\x00where\x00"  # placeholder for an optional line filter (see with_where)


@dataclass(frozen=True)
class BatchStatements:
    """Everything needed to move one landed batch into the live table."""

    insert: str  # plain INSERT ... SELECT (see with_where)
    dedupe_insert: str | None  # DISTINCT ON (keys) ... ON CONFLICT DO UPDATE
    probes: tuple[tuple[Column, str], ...]  # per column: SELECT converting it alone


def _from(fields: Sequence[Column]) -> str:
    """FROM the landing table, plus one jsonb_to_record over the one-pass fields."""
    if not fields:
        return f"FROM {LANDING} l"
    definitions = ", ".join(f"{quote(column.prop)} {column.field_type}" for column in fields)
    return f"FROM {LANDING} l, jsonb_to_record(l.rec) AS {RECORD_ALIAS}({definitions})"


def _select(column: Column, table_sql: str, params: Mapping[str, str]) -> str:
    if column.field_type is not None and not column.metadata:
        return render_field(column, f"{RECORD_ALIAS}.{quote(column.prop)}")
    return render_expr(column, table_sql, params)


def batch_statements(
    table_sql: str,
    columns: Sequence[Column],
    keys: Sequence[str],
    params: Mapping[str, str],
) -> BatchStatements:
    """Build the insert statements (and the error-path probes) for the current columns."""
    fields = [c for c in columns if c.field_type is not None and not c.metadata]
    source = _from(fields)
    exprs = [(column, _select(column, table_sql, params)) for column in columns]
    names = ", ".join(quote(column.name) for column in columns)
    selects = ", ".join(expr for _, expr in exprs)
    insert = f"INSERT INTO {table_sql} ({names}) SELECT {selects} {source} {WHERE}"
    dedupe = None
    if keys:
        aliased = ", ".join(f"{expr} AS {quote(column.name)}" for column, expr in exprs)
        key_list = ", ".join(quote(k) for k in keys)
        updates = [
            f"{quote(c.name)} = EXCLUDED.{quote(c.name)}" for c in columns if c.name not in keys
        ]
        conflict = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
        dedupe = (
            f"INSERT INTO {table_sql} ({names}) SELECT {names} FROM ("
            f"SELECT DISTINCT ON ({key_list}) * FROM ("
            f"SELECT l.line AS {LINE_ALIAS}, {aliased} {source} {WHERE}) converted "
            f"ORDER BY {key_list}, {LINE_ALIAS} DESC) deduplicated ORDER BY {LINE_ALIAS} "
            f"ON CONFLICT ({key_list}) {conflict}"
        )
    probes = tuple(
        (column, f"SELECT {expr} {_from([column] if column in fields else [])}")
        for column, expr in exprs
    )
    return BatchStatements(insert, dedupe, probes)


def with_where(statement: str, clause: str = "") -> str:
    """Fill the line-filter placeholder (used to probe parts of a batch on the error path)."""
    return statement.replace(WHERE, clause)
