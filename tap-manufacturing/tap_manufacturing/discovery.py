"""Describe one source table from pg_catalog and turn it into a Singer catalog entry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg2.extensions

from tap_manufacturing.config import SourceSettings
from tap_manufacturing.logical.catalog import with_change_properties
from tap_manufacturing.types import PgType, map_type, property_schema

_TABLE_SQL = """
SELECT c.oid, c.relkind, c.reltuples::bigint, obj_description(c.oid, 'pg_class')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""

_COLUMNS_SQL = """
SELECT a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       col_description(a.attrelid, a.attnum)
FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_PRIMARY_KEY_SQL = """
SELECT a.attname
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, position)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s AND i.indisprimary
ORDER BY k.position
"""

_TYPE_SQL = """
SELECT t.typname, t.typtype, t.typbasetype, t.typtypmod, t.typelem, t.typcategory,
       n.nspname = 'pg_catalog', format_type(t.oid, %s),
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
             ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.oid = %s
"""

REPLICATION_KEY_TYPES = ("timestamptz", "timestamp", "date", "int2", "int4", "int8", "numeric")


@dataclass(frozen=True)
class Column:
    """One column of the source table."""

    name: str
    type: PgType
    not_null: bool
    comment: str | None = None


@dataclass(frozen=True)
class TableInfo:
    """What discovery learns about the source table."""

    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    is_view: bool
    row_estimate: int
    comment: str | None = None

    def column(self, name: str) -> Column | None:
        """The column called `name`, if any."""
        return next((c for c in self.columns if c.name == name), None)


class TableNotFound(LookupError):
    """The configured table does not exist (or is not visible to the user)."""


def _describe_type(cursor: psycopg2.extensions.cursor, oid: int, typmod: int) -> PgType:
    cursor.execute(_TYPE_SQL, (typmod, oid))
    name, kind, base_oid, base_typmod, elem_oid, category, builtin, exact, labels = (
        cursor.fetchone()
    )
    if kind == "d":
        base = _describe_type(cursor, base_oid, base_typmod)
        return PgType(
            exact=exact,
            name=base.name,
            base=base.base,
            kind=base.kind,
            builtin=base.builtin,
            enum_labels=base.enum_labels,
            element=base.element,
            typmod=base.typmod,
        )
    element = None
    if category == "A" and elem_oid:
        element = _describe_type(cursor, elem_oid, typmod)
    return PgType(
        exact=exact,
        name=name,
        base=exact,
        kind=kind,
        builtin=bool(builtin),
        enum_labels=tuple(labels or ()),
        element=element,
        typmod=typmod,
    )


def describe_table(connection: psycopg2.extensions.connection, source: SourceSettings) -> TableInfo:
    """Read the columns, primary key and size estimate of the source's table."""
    with connection.cursor() as cursor:
        cursor.execute(_TABLE_SQL, (source.schema, source.table))
        row = cursor.fetchone()
        if row is None:
            msg = f"table {source.schema}.{source.table} does not exist"
            raise TableNotFound(msg)
        oid, relkind, reltuples, comment = row
        cursor.execute(_COLUMNS_SQL, (oid,))
        raw_columns = cursor.fetchall()
        columns = tuple(
            Column(name, _describe_type(cursor, type_oid, typmod), bool(not_null), column_comment)
            for name, type_oid, typmod, _text, not_null, column_comment in raw_columns
        )
        cursor.execute(_PRIMARY_KEY_SQL, (oid,))
        primary_key = tuple(r[0] for r in cursor.fetchall())
    connection.commit()
    return TableInfo(
        columns=columns,
        primary_key=primary_key,
        is_view=relkind in ("v", "m"),
        row_estimate=max(int(reltuples or 0), 0),
        comment=comment,
    )


def _described(schema: dict[str, Any], comment: str | None) -> dict[str, Any]:
    """The schema with the source's COMMENT as its JSON Schema `description`.

    Source comments are how the lines document their columns; carried in the catalog they
    reach whoever reads it (the dbt sources of `transform/` are generated from it). A note the
    type mapping already put there (how a value is encoded) follows the comment.
    """
    if not comment:
        return schema
    note = schema.get("description")
    return {**schema, "description": f"{comment} ({note})" if note else comment}


def catalog_entry(
    source: SourceSettings, table: TableInfo, *, json_as_text: bool = False
) -> dict[str, Any]:
    """The Singer catalog entry for the source's stream, selected by default (json/jsonb
    columns described as JSON text when `json_as_text`; see types.py)."""
    replication_key = source.replication_key if source.replication_method == "INCREMENTAL" else None
    automatic = set(table.primary_key) | ({replication_key} if replication_key else set())
    properties = {
        column.name: _described(
            property_schema(column.type, not_null=column.not_null, json_as_text=json_as_text),
            column.comment,
        )
        for column in table.columns
    }
    valid_keys = [c.name for c in table.columns if c.type.name in REPLICATION_KEY_TYPES]
    if replication_key and replication_key not in valid_keys:
        valid_keys.insert(0, replication_key)
    stream_metadata: dict[str, Any] = {
        "table-key-properties": list(table.primary_key),
        "valid-replication-keys": valid_keys,
        "schema-name": source.schema,
        "database-name": source.database,
        "is-view": table.is_view,
        "row-count": table.row_estimate,
        "forced-replication-method": source.replication_method,
        "selected-by-default": True,
        "selected": True,
    }
    if replication_key:
        stream_metadata["replication-method"] = "INCREMENTAL"
        stream_metadata["replication-key"] = replication_key
    metadata: list[dict[str, Any]] = [{"breadcrumb": [], "metadata": stream_metadata}]
    for column in table.columns:
        metadata.append(
            {
                "breadcrumb": ["properties", column.name],
                "metadata": {
                    "inclusion": "automatic" if column.name in automatic else "available",
                    "selected-by-default": True,
                    "sql-datatype": column.type.exact,
                },
            }
        )
    entry: dict[str, Any] = {
        "tap_stream_id": source.name,
        "stream": source.name,
        "table_name": source.table,
        "database_name": source.database,
        "is_view": table.is_view,
        "row_count": table.row_estimate,
        "key_properties": list(table.primary_key),
        "replication_method": source.replication_method,
        "schema": _described({"type": "object", "properties": properties}, table.comment),
        "metadata": metadata,
    }
    if replication_key:
        entry["replication_key"] = replication_key
    if source.replication_method == "LOG_BASED":
        stream_metadata["replication-method"] = "LOG_BASED"
        return with_change_properties(entry)
    return entry


def portable_type(column: Column) -> str:
    """The column's portable type hint (for logs and tests)."""
    return map_type(column.type).portable


def describe_type(connection: psycopg2.extensions.connection, oid: int, typmod: int) -> PgType:
    """A type by OID and modifier, as discovery describes a column's (for LOG_BASED streams,
    whose Relation messages name types by OID)."""
    with connection.cursor() as cursor:
        pg_type = _describe_type(cursor, oid, typmod)
    connection.commit()
    return pg_type
