"""Column types, and how each column's value is turned into its text form.

A column's type comes from the exact `x-sql-datatype` hint when the warehouse has that type,
otherwise from JSON Schema. Its `kind` says how copy_text/ writes a JSON value as the text the
type's own input function reads (the server parses it; Python never converts the value).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from target_warehouse_raw.schema.names import legacy_identifiers, map_identifiers

# x-sql-datatype values we are willing to put into DDL: type names (quoted ones such as
# "char" too), typmods (negative numeric scales too), array brackets.
_SAFE_TYPE = re.compile(r'^"?[A-Za-z_][A-Za-z0-9_ ."]*(\([0-9, -]+\))?[A-Za-z ]*(\[\d*\])*$')


@dataclass(frozen=True)
class TypeInfo:
    """What the server says about a type: pg_type.typname, typcategory and element name."""

    typname: str
    category: str
    element: str | None = None


@dataclass(frozen=True)
class Column:
    """One table column: where its value comes from and how it is written for COPY."""

    name: str  # identifier in the table
    prop: str  # key in the record JSON ('' for metadata columns)
    sql_type: str  # type used in DDL
    kind: str  # how a value becomes its text form (see copy_text/values.py)
    json_types: frozenset[str] | None  # allowed JSON types; None = anything
    required: bool = False  # key must be present (JSON Schema `required`)
    key: bool = False  # part of the primary key
    metadata: bool = False  # a Singer `_sdc_*` column filled by the target
    exact_type: bool = False  # sql_type is the source's own (x-sql-datatype), not derived
    legacy_name: str = ""  # the identifier earlier versions gave `prop`, if not `name`


Resolver = Callable[[str], "TypeInfo | None"]


JSON_MEDIA_TYPE = "application/json"


def is_json_text(schema: Mapping[str, Any]) -> bool:
    """True when the schema says the value is a string holding JSON text (tap-manufacturing's
    `json_as_text`): only strings (and null), marked `contentMediaType: application/json`."""
    return schema.get("contentMediaType") == JSON_MEDIA_TYPE and _non_null(schema) == ["string"]


def kind_of(info: TypeInfo, schema: Mapping[str, Any]) -> str:
    """The conversion kind of a column type: its text form is built from the JSON value.

    A json/jsonb column whose schema marks its strings as JSON text takes each string's text
    as the value's input text (kind `text`): the source's exact json, and `"null"` is the JSON
    null, not SQL NULL. Without the marking (any other tap) the JSON value itself is the input,
    and in a json[]/jsonb[] array each element's JSON text (kind `json_array`: a string
    element `"x"` is the JSON string `"x"`, not the text x).
    """
    if info.category == "A":
        items = schema.get("items")
        if info.element in ("json", "jsonb") and not (
            isinstance(items, Mapping) and is_json_text(items)
        ):
            return "json_array"  # elements are JSON values: a string element is JSON text
        return "array"
    if info.typname in ("json", "jsonb"):
        return "text" if is_json_text(schema) else "json"
    if info.typname == "bytea":
        return "bytea64" if schema.get("contentEncoding") == "base64" else "text"
    if info.typname == "bool":
        return "boolean"
    if info.typname in ("int2", "int4", "int8"):
        return info.typname
    return "text"  # strings as their text, numbers as their exact digits


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
    return Column(
        name=name,
        prop=prop,
        sql_type=sql_type,
        kind=kind_of(info, schema),
        json_types=json_types(schema),
        required=required or key,
        key=key,
        exact_type=hinted is not None,
    )


# Singer metadata columns (the SDK's add_record_metadata convention) and how they are filled.
_TS = "timestamp with time zone"
METADATA_COLUMNS = (
    Column("_sdc_extracted_at", "", _TS, "text", None, metadata=True),
    Column("_sdc_received_at", "", _TS, "text", None, metadata=True),
    Column("_sdc_batched_at", "", _TS, "text", None, metadata=True),
    Column("_sdc_deleted_at", "", _TS, "text", None, metadata=True),
    Column("_sdc_sequence", "", "bigint", "int8", None, metadata=True),
    Column("_sdc_table_version", "", "bigint", "int8", None, metadata=True),
    Column("_sdc_sync_started_at", "", "bigint", "int8", None, metadata=True),
)
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
    names = map_identifiers(data_props, taken=taken, columns=True)
    legacy = legacy_identifiers(data_props, taken=taken)
    columns = [
        dataclasses.replace(
            column_for(
                names[prop],
                prop,
                properties[prop] if isinstance(properties[prop], Mapping) else {},
                resolver,
                key=prop in key_properties,
                required=prop in required,
            ),
            legacy_name="" if legacy[prop] == names[prop] else legacy[prop],
        )
        for prop in data_props
    ]
    if add_metadata:
        columns.extend(METADATA_COLUMNS)
    return columns
