"""Column types and the server-side expressions that convert landed JSON values.

Every record lands as `rec jsonb` in a temporary table (alias `l`). Most columns are converted
in ONE pass per record: `jsonb_to_record(l.rec) AS r("key" type, ...)` parses each value with
the column type's own input function, so PostgreSQL, not Python, converts values. A column
whose key cannot be a column alias, or whose type needs it, is filled by its own expression
over `l.rec` instead. One registered handler per kind of type builds both forms.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from target_warehouse_raw.names import literal, map_identifiers, quote

# x-sql-datatype values we are willing to put into DDL: type names, typmods, array brackets.
_SAFE_TYPE = re.compile(r'^[A-Za-z_][A-Za-z0-9_ ."]*(\([0-9, ]+\))?[A-Za-z ]*(\[\d*\])*$')


@dataclass(frozen=True)
class TypeInfo:
    """What the server says about a type: pg_type.typname, typcategory and element name."""

    typname: str
    category: str
    element: str | None = None


@dataclass(frozen=True)
class Column:
    """One table column: where its value comes from and how it is converted."""

    name: str  # identifier in the table
    prop: str  # key in the record JSON ('' for metadata columns)
    sql_type: str  # type used in DDL
    expr: str  # conversion expression over the landing row (`l.rec`, `l.line`, ...)
    json_types: frozenset[str] | None  # allowed jsonb_typeof() values; None = anything
    required: bool = False  # key must be present (JSON Schema `required`)
    key: bool = False  # part of the primary key
    metadata: bool = False  # a Singer `_sdc_*` column filled by the target
    # The one-pass form: the type of this key in jsonb_to_record's column definition list and
    # the expression over that field (FIELD placeholder); None = use `expr`.
    field_type: str | None = None
    field_expr: str = ""


# Placeholders filled by render_expr (NUL never occurs in SQL text we build).
ROW, COLUMN, QCOLUMN = "\x00row\x00", "\x00column\x00", "\x00qcolumn\x00"
RECEIVED, SEQUENCE_BASE, SYNC_STARTED = "\x00received\x00", "\x00seq\x00", "\x00sync\x00"
FIELD = "\x00field\x00"

# (expression over l.rec, field type for jsonb_to_record or None, expression over FIELD)
Conversion = tuple[str, "str | None", str]

Resolver = Callable[[str], "TypeInfo | None"]
_HANDLERS: dict[str, Callable[[str, str, Mapping[str, Any]], Conversion]] = {}


def handler(*kinds: str) -> Callable:
    """Register the expression builder for one or more kinds of type."""

    def register(function: Callable[[str, str, Mapping[str, Any]], Conversion]) -> Callable:
        for kind in kinds:
            _HANDLERS[kind] = function
        return function

    return register


@handler("json", "jsonb")
def _json(key: str, sql_type: str, schema: Mapping[str, Any]) -> Conversion:
    """JSON stays JSON; a JSON null becomes SQL NULL (jsonb_to_record does the same)."""
    return f"nullif(l.rec->{key}, 'null'::jsonb)::{sql_type}", sql_type, FIELD


@handler("bytea")
def _bytea(key: str, sql_type: str, schema: Mapping[str, Any]) -> Conversion:
    """base64 when the schema says so (our tap), else bytea's own text input (`\\x...`)."""
    if schema.get("contentEncoding") == "base64":
        return f"decode(l.rec->>{key}, 'base64')", "text", f"decode({FIELD}, 'base64')"
    return f"(l.rec->>{key})::bytea", "text", f"{FIELD}::bytea"


@handler("money")
def _money(key: str, sql_type: str, schema: Mapping[str, Any]) -> Conversion:
    """money arrives as a number; going through numeric avoids locale-dependent parsing."""
    return f"(l.rec->>{key})::numeric::money", "text", f"{FIELD}::numeric::money"


@handler("string")
def _string(key: str, sql_type: str, schema: Mapping[str, Any]) -> Conversion:
    """Text types arrive as text: no explicit cast, so varchar(n)/char(n) reject (not cut)
    long values when the INSERT assigns them."""
    return f"(l.rec->>{key})", "text", FIELD


@handler("array")
def _array(key: str, sql_type: str, schema: Mapping[str, Any]) -> Conversion:
    """JSON arrays (any dimension): jsonb_to_record builds them like jsonb_populate_record.

    The ROW/COLUMN placeholders are filled in by the loader with the live table and column.
    """
    return (
        f"(jsonb_populate_record(NULL::{ROW}, jsonb_build_object({COLUMN}, l.rec->{key})))"
        f".{QCOLUMN}",
        sql_type,
        FIELD,
    )


@handler("other")
def _other(key: str, sql_type: str, schema: Mapping[str, Any]) -> Conversion:
    """Everything else: the type's input function reads PostgreSQL's own text form."""
    return f"(l.rec->>{key})::{sql_type}", sql_type, FIELD


@handler("composite")
def _composite(key: str, sql_type: str, schema: Mapping[str, Any]) -> Conversion:
    """Composite types read their text form; jsonb_to_record would want a JSON object."""
    return f"(l.rec->>{key})::{sql_type}", None, ""


def _kind(info: TypeInfo) -> str:
    if info.category == "A":
        return "array"
    if info.typname in ("json", "jsonb", "bytea", "money"):
        return info.typname
    if info.category == "S":
        return "string"
    if info.category in ("C", "P", "X"):
        return "composite"
    return "other"


def json_types(schema: Mapping[str, Any]) -> frozenset[str] | None:
    """The jsonb_typeof() values a JSON Schema allows; None when it allows anything."""
    if not isinstance(schema, Mapping):
        return None
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            union: set[str] = set()
            for sub in schema[combinator]:
                allowed = json_types(sub)
                if allowed is None:
                    return None
                union |= allowed
            return frozenset(union)
    declared = schema.get("type")
    if declared is None:
        return None
    declared = [declared] if isinstance(declared, str) else list(declared)
    mapping = {"integer": "number", "number": "number", "string": "string"}
    return frozenset(mapping.get(item, item) for item in declared)


def _non_null(schema: Mapping[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        declared = [declared]
    return [item for item in declared or [] if item != "null"]


def json_schema_type(schema: Mapping[str, Any]) -> str:
    """The column type from JSON Schema alone (no x-sql-datatype hint)."""
    if not isinstance(schema, Mapping) or "anyOf" in schema or "oneOf" in schema:
        return "jsonb"
    types = _non_null(schema)
    if len(types) != 1:
        return "jsonb"
    kind = types[0]
    if kind == "integer":
        return "bigint"
    if kind == "number":
        return "numeric"
    if kind == "boolean":
        return "boolean"
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return "timestamp with time zone"
        if fmt == "date":
            return "date"
        if fmt == "time":
            return "time without time zone"
        if schema.get("contentEncoding") == "base64":
            return "bytea"
        return "text"
    return "jsonb"


_BUILTIN_INFO = {
    "bigint": TypeInfo("int8", "N"),
    "numeric": TypeInfo("numeric", "N"),
    "boolean": TypeInfo("bool", "B"),
    "timestamp with time zone": TypeInfo("timestamptz", "D"),
    "date": TypeInfo("date", "D"),
    "time without time zone": TypeInfo("time", "D"),
    "bytea": TypeInfo("bytea", "U"),
    "text": TypeInfo("text", "S"),
    "jsonb": TypeInfo("jsonb", "U"),
}


def hinted_type(schema: Mapping[str, Any], resolver: Resolver) -> tuple[str, TypeInfo] | None:
    """The x-sql-datatype hint, if it is a safe, real type in the warehouse."""
    hint = schema.get("x-sql-datatype") if isinstance(schema, Mapping) else None
    if not isinstance(hint, str) or not _SAFE_TYPE.match(hint.strip()):
        return None
    info = resolver(hint.strip())
    return (hint.strip(), info) if info is not None else None


def column_for(
    name: str,
    prop: str,
    schema: Mapping[str, Any],
    resolver: Resolver,
    *,
    key: bool,
    required: bool,
) -> Column:
    """Build one column from a property's JSON Schema."""
    hinted = hinted_type(schema, resolver)
    if hinted is not None:
        sql_type, info = hinted
    else:
        sql_type = json_schema_type(schema)
        info = _BUILTIN_INFO[sql_type]
    expr, field_type, field_expr = _HANDLERS[_kind(info)](literal(prop), sql_type, schema)
    if not usable_alias(prop):
        field_type = None
    return Column(
        name=name,
        prop=prop,
        sql_type=sql_type,
        expr=expr,
        json_types=json_types(schema),
        required=required or key,
        key=key,
        field_type=field_type,
        field_expr=field_expr,
    )


def usable_alias(prop: str) -> bool:
    """Can this JSON key be a column alias in jsonb_to_record's definition list exactly?

    Identifiers longer than 63 bytes are cut by the server, and "" is not an identifier.
    """
    return 0 < len(prop.encode()) <= 63 and "\x00" not in prop


# Singer metadata columns (the SDK's add_record_metadata convention) and how they are filled.
METADATA_COLUMNS = (
    Column("_sdc_extracted_at", "", "timestamp with time zone",
           "l.extracted_at::timestamptz", None, metadata=True),
    Column("_sdc_received_at", "", "timestamp with time zone", RECEIVED, None, metadata=True),
    Column("_sdc_batched_at", "", "timestamp with time zone", "now()", None, metadata=True),
    Column("_sdc_deleted_at", "", "timestamp with time zone",
           "(l.rec->>'_sdc_deleted_at')::timestamptz", None, metadata=True),
    Column("_sdc_sequence", "", "bigint", f"({SEQUENCE_BASE} + l.line)", None, metadata=True),
    Column("_sdc_table_version", "", "bigint", "l.version", None, metadata=True),
    Column("_sdc_sync_started_at", "", "bigint", SYNC_STARTED, None, metadata=True),
)  # fmt: skip
METADATA_NAMES = frozenset(column.name for column in METADATA_COLUMNS)
VERSION_COLUMN = METADATA_COLUMNS[5]
DELETED_COLUMN = METADATA_COLUMNS[3]


class SchemaError(ValueError):
    """A SCHEMA message the target cannot build a table from."""


def build_columns(
    schema: Mapping[str, Any],
    key_properties: list[str],
    resolver: Resolver,
    *,
    add_metadata: bool,
) -> list[Column]:
    """All columns of a stream's table, in schema order, metadata columns last."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("properties"), Mapping):
        raise SchemaError("SCHEMA message has no 'properties' object")
    properties: Mapping[str, Any] = schema["properties"]
    missing = [key for key in key_properties if key not in properties]
    if missing:
        raise SchemaError(f"key properties {missing} are not in the schema's properties")
    required = set(schema.get("required") or [])
    data_props = [p for p in properties if not (add_metadata and p in METADATA_NAMES)]
    taken = METADATA_NAMES if add_metadata else ()
    names = map_identifiers(data_props, taken=taken)
    columns = [
        column_for(
            names[prop],
            prop,
            properties[prop] if isinstance(properties[prop], Mapping) else {},
            resolver,
            key=prop in key_properties,
            required=prop in required,
        )
        for prop in data_props
    ]
    if add_metadata:
        columns.extend(METADATA_COLUMNS)
    return columns


def render_expr(column: Column, table_sql: str, params: Mapping[str, str]) -> str:
    """Fill the loader-specific placeholders of a column expression."""
    expr = column.expr
    replacements = {ROW: table_sql, COLUMN: literal(column.name), QCOLUMN: quote(column.name)}
    replacements |= {
        RECEIVED: params.get("received", "now()"),
        SEQUENCE_BASE: params.get("sequence_base", "0"),
        SYNC_STARTED: params.get("sync_started", "NULL"),
    }
    for placeholder, value in replacements.items():
        expr = expr.replace(placeholder, value)
    return expr


def render_field(column: Column, field_sql: str) -> str:
    """The one-pass expression for a column, over the jsonb_to_record field `field_sql`."""
    return column.field_expr.replace(FIELD, field_sql)
