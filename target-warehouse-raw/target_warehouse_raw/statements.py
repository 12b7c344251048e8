"""SQL text for one stream's batch: landing table, validation query, INSERT ... SELECT.

Pure string building; the loader runs them. The landing table holds one row per record:
`(line bigint, rec jsonb, version bigint, extracted_at text)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from target_warehouse_raw.names import literal, quote
from target_warehouse_raw.types import Column, render_expr

LANDING = "pg_temp._twr_landing"
LANDING_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS _twr_landing "
    "(line bigint NOT NULL, rec jsonb, version bigint, extracted_at text)"
)
COPY_SQL = f"COPY {LANDING} (line, rec, version, extracted_at) FROM STDIN"
LINE_ALIAS = "_twr_line__"
WHERE = "\x00where\x00"  # placeholder for an optional line filter (see with_where)


@dataclass(frozen=True)
class Check:
    """One validation rule; `code` is what the validation query returns for it."""

    code: int
    prop: str | None
    problem: str
    missing_key: bool = False


@dataclass(frozen=True)
class BatchStatements:
    """Everything needed to move one landed batch into the live table."""

    validate: str
    checks: tuple[Check, ...]
    insert: str  # plain INSERT ... SELECT (see with_where)
    dedupe_insert: str | None  # DISTINCT ON (keys) ... ON CONFLICT DO UPDATE
    exprs: tuple[tuple[Column, str], ...]


def validation(columns: Sequence[Column]) -> tuple[str, tuple[Check, ...]]:
    """One query returning the first (line, code) whose record breaks the schema."""
    checks = [Check(0, None, "the record is not a JSON object")]
    cases = ["WHEN jsonb_typeof(rec) IS DISTINCT FROM 'object' THEN 0"]
    for column in columns:
        if column.metadata:
            continue
        key = literal(column.prop)
        if column.key:
            code = len(checks)
            checks.append(Check(code, column.prop, "key property is missing or null", True))
            cases.append(f"WHEN rec->{key} IS NULL OR rec->{key} = 'null'::jsonb THEN {code}")
        elif column.required:
            code = len(checks)
            checks.append(Check(code, column.prop, "required property is missing"))
            cases.append(f"WHEN rec->{key} IS NULL THEN {code}")
        if column.json_types is not None:
            allowed = sorted(column.json_types)
            code = len(checks)
            checks.append(
                Check(code, column.prop, "JSON type {actual} is not allowed by the schema "
                      f"(allowed: {', '.join(allowed)})")
            )  # fmt: skip
            array = "ARRAY[" + ", ".join(literal(a) for a in allowed) + "]::text[]"
            cases.append(f"WHEN jsonb_typeof(rec->{key}) <> ALL({array}) THEN {code}")
    query = (
        f"SELECT line, code FROM (SELECT line, CASE {' '.join(cases)} END AS code "
        f"FROM {LANDING}) checked WHERE code IS NOT NULL ORDER BY line LIMIT 1"
    )
    return query, tuple(checks)


def batch_statements(
    table_sql: str,
    columns: Sequence[Column],
    keys: Sequence[str],
    params: Mapping[str, str],
) -> BatchStatements:
    """Build the validation and insert statements for the current columns."""
    exprs = tuple((column, render_expr(column, table_sql, params)) for column in columns)
    names = ", ".join(quote(column.name) for column in columns)
    selects = ", ".join(expr for _, expr in exprs)
    insert = (
        f"INSERT INTO {table_sql} ({names}) SELECT {selects} FROM {LANDING} {WHERE} ORDER BY line"
    )
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
            f"SELECT line AS {LINE_ALIAS}, {aliased} FROM {LANDING} {WHERE}) converted "
            f"ORDER BY {key_list}, {LINE_ALIAS} DESC) deduplicated ORDER BY {LINE_ALIAS} "
            f"ON CONFLICT ({key_list}) {conflict}"
        )
    query, checks = validation(columns)
    return BatchStatements(query, checks, insert, dedupe, exprs)


def with_where(statement: str, clause: str = "") -> str:
    """Fill the line-filter placeholder (used to probe parts of a batch on the error path)."""
    return statement.replace(WHERE, clause)
