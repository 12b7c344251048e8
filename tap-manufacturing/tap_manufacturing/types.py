"""PostgreSQL type -> JSON Schema, portable type hint and SELECT expression.

One registered handler per type category. Values are rendered by PostgreSQL itself
(`row_to_json`), so a handler only says how the column is described and, for the few types
whose JSON form is not already exact and portable, which SQL expression renders it.
See docs/value-encoding.md and the table in the README.

json and jsonb travel in one of two ways, chosen by the `json_as_text` setting:
- off (the default, for any Singer target): the JSON value itself, json normalised through
  jsonb. A JSON `null` then looks exactly like SQL NULL, and json loses its whitespace, key
  order and duplicate keys: what one JSON document can say;
- on (our pipeline): the source's own text (`col::text`) as a JSON string, marked
  `"contentMediaType": "application/json"`, with `x-sql-datatype` `json` or `jsonb`. SQL NULL
  is JSON null and the JSON value null is the string `"null"`; a json value keeps every byte.
  A target that knows the marking (target-warehouse-raw) hands the text to the column type's
  input function; any other target still gets valid JSON text in a string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSON_TYPES = ["object", "array", "string", "number", "integer", "boolean"]
JSON_MEDIA_TYPE = "application/json"
JSON_NAMES = ("json", "jsonb")


@dataclass(frozen=True)
class PgType:
    """A column type as pg_catalog describes it (domains already resolved to their base)."""

    exact: str
    """`format_type()` text of the declared type, e.g. `numeric(10,4)`, `my_enum`, `int4_domain`."""
    name: str
    """`pg_type.typname` of the (base) type, e.g. `numeric`, `timestamptz`, `_int4`."""
    base: str
    """`format_type()` text of the base type with its modifier, e.g. `numeric(10,4)`."""
    kind: str = "b"
    """`pg_type.typtype` of the base type: b(ase), e(num), c(omposite), r(ange), m(ultirange)."""
    builtin: bool = True
    """Whether the base type lives in pg_catalog (exists in every database)."""
    enum_labels: tuple[str, ...] = ()
    element: PgType | None = None
    """For arrays: the element type."""
    typmod: int = -1


@dataclass(frozen=True)
class TypeMapping:
    """How one column travels: its JSON Schema, the portable type hint, its SELECT expression."""

    schema: dict[str, Any]
    portable: str
    expression: Callable[[str], str] = field(default=lambda column: column)


Handler = Callable[[PgType], TypeMapping]
_HANDLERS: dict[str, Handler] = {}


def handles(*keys: str) -> Callable[[Handler], Handler]:
    """Register a handler for the given type names (or the kinds `enum`, `array`, ...)."""

    def register(handler: Handler) -> Handler:
        for key in keys:
            _HANDLERS[key] = handler
        return handler

    return register


def _plain(pg: PgType) -> str:
    """The portable type: the base type's own text when built in, else text."""
    return pg.base if pg.builtin else "text"


@handles("int2", "int4", "int8")
def _integer(pg: PgType) -> TypeMapping:
    """Integers are JSON integers."""
    return TypeMapping({"type": ["integer"]}, _plain(pg))


@handles("oid")
def _oid(pg: PgType) -> TypeMapping:
    """oid is rendered through bigint: PostgreSQL's JSON functions write an oid as a string."""
    return TypeMapping({"type": ["integer"]}, "oid", lambda column: f"{column}::bigint")


@handles("numeric", "float4", "float8")
def _number(pg: PgType) -> TypeMapping:
    """Exact digits as a JSON number; NaN/Infinity/-Infinity come as strings."""
    return TypeMapping({"type": ["number", "string"]}, _plain(pg))


@handles("money")
def _money(pg: PgType) -> TypeMapping:
    """money is rendered through numeric so the value does not depend on lc_monetary."""
    return TypeMapping({"type": ["number"]}, "money", lambda column: f"{column}::numeric")


@handles("bool")
def _boolean(pg: PgType) -> TypeMapping:
    """Booleans are JSON booleans."""
    return TypeMapping({"type": ["boolean"]}, "boolean")


@handles("varchar", "bpchar", "text", "name", "char")
def _text(pg: PgType) -> TypeMapping:
    """Character types are strings; varchar(n)/char(n) carry maxLength."""
    schema: dict[str, Any] = {"type": ["string"]}
    if pg.name in ("varchar", "bpchar") and pg.typmod > 4:
        schema["maxLength"] = pg.typmod - 4
    return TypeMapping(schema, _plain(pg))


@handles("timestamptz", "timestamp")
def _timestamp(pg: PgType) -> TypeMapping:
    """ISO 8601 text (UTC offset for timestamptz); also `infinity` and BC forms."""
    return TypeMapping({"type": ["string"], "format": "date-time"}, _plain(pg))


@handles("date")
def _date(pg: PgType) -> TypeMapping:
    """ISO dates, e.g. 2024-01-02."""
    return TypeMapping({"type": ["string"], "format": "date"}, _plain(pg))


@handles("time", "timetz")
def _time(pg: PgType) -> TypeMapping:
    """Times of day, e.g. 03:04:05.5 or 03:04:05+02."""
    return TypeMapping({"type": ["string"], "format": "time"}, _plain(pg))


@handles("interval")
def _interval(pg: PgType) -> TypeMapping:
    """ISO 8601 durations as PostgreSQL writes them (IntervalStyle iso_8601)."""
    schema = {
        "type": ["string"],
        "description": "ISO 8601 duration as PostgreSQL writes it, e.g. P1Y2M3DT4H5M6.5S",
    }
    return TypeMapping(schema, _plain(pg))


@handles("uuid")
def _uuid(pg: PgType) -> TypeMapping:
    """UUIDs in their canonical text form."""
    return TypeMapping({"type": ["string"], "format": "uuid"}, "uuid")


@handles("bytea")
def _bytea(pg: PgType) -> TypeMapping:
    """Binary as base64 without line breaks."""
    return TypeMapping(
        {"type": ["string"], "contentEncoding": "base64"},
        "bytea",
        lambda column: f"translate(encode({column}, 'base64'), E'\\n', '')",
    )


@handles("json", "jsonb")
def _json(pg: PgType) -> TypeMapping:
    """The JSON value itself; json is normalised through jsonb. A JSON null is possible."""
    return TypeMapping({"type": [*JSON_TYPES, "null"]}, "jsonb", lambda column: f"{column}::jsonb")


@handles("json-text")
def _json_text(pg: PgType) -> TypeMapping:
    """The source's exact JSON text as a string marked as JSON (json_as_text)."""
    return TypeMapping(
        {"type": ["string"], "contentMediaType": JSON_MEDIA_TYPE},
        _plain(pg),
        lambda column: f"{column}::text",
    )


@handles("json-text-array")
def _json_text_array(pg: PgType) -> TypeMapping:
    """Arrays of json/jsonb with json_as_text: JSON arrays (nested for more dimensions) of
    the elements' exact text; a NULL element is null, a JSON null element the string "null"."""
    assert pg.element is not None
    items = nullable(_json_text(pg.element).schema)
    return TypeMapping(
        {"type": ["array"], "items": items},
        f"{_plain(pg.element)}[]",
        lambda column: f"{column}::text[]",
    )


@handles("enum")
def _enum(pg: PgType) -> TypeMapping:
    """Enum labels as strings, listed in JSON Schema `enum`; the portable type is text."""
    return TypeMapping({"type": ["string"], "enum": list(pg.enum_labels)}, "text")


@handles("composite")
def _composite(pg: PgType) -> TypeMapping:
    """Composite values as JSON objects; the portable type is jsonb."""
    return TypeMapping({"type": ["object"]}, "jsonb")


@handles("array")
def _array(pg: PgType) -> TypeMapping:
    """JSON arrays (nested for multi-dimensional arrays) of the element's JSON form."""
    assert pg.element is not None
    element = map_type(pg.element)
    items = nullable(element.schema)
    expression: Callable[[str], str] = lambda column: column  # noqa: E731
    if pg.element.name == "money":
        expression = lambda column: f"{column}::numeric[]"  # noqa: E731
    elif pg.element.name == "json":
        expression = lambda column: f"{column}::jsonb[]"  # noqa: E731
    return TypeMapping({"type": ["array"], "items": items}, f"{element.portable}[]", expression)


@handles("*")
def _other(pg: PgType) -> TypeMapping:
    """Any other type (inet, cidr, macaddr, bit, ranges, xml, ...): its text form."""
    return TypeMapping({"type": ["string"]}, _plain(pg))


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `schema` that also accepts null."""
    result = dict(schema)
    types = list(result.get("type", []))
    if "null" not in types:
        types.append("null")
    result["type"] = types
    if "enum" in result and None not in result["enum"]:
        result["enum"] = [*result["enum"], None]
    return result


def map_type(pg: PgType, *, json_as_text: bool = False) -> TypeMapping:
    """The registered handler's mapping for `pg` (json/jsonb as text when `json_as_text`)."""
    if pg.element is not None:
        as_text = json_as_text and pg.element.name in JSON_NAMES and pg.element.element is None
        key = "json-text-array" if as_text else "array"
    elif json_as_text and pg.name in JSON_NAMES:
        key = "json-text"
    elif pg.kind == "e":
        key = "enum"
    elif pg.kind == "c":
        key = "composite"
    else:
        key = pg.name
    return _HANDLERS.get(key, _HANDLERS["*"])(pg)


def property_schema(pg: PgType, *, not_null: bool, json_as_text: bool = False) -> dict[str, Any]:
    """The column's JSON Schema with its `x-sql-datatype` hint."""
    mapping = map_type(pg, json_as_text=json_as_text)
    schema = dict(mapping.schema) if not_null else nullable(mapping.schema)
    schema["x-sql-datatype"] = mapping.portable
    return schema


def marked_as_json_text(schema: dict[str, Any]) -> bool:
    """True when a property's schema (or, for an array, its items') says its strings are JSON
    text: how a sync knows which way its catalog was discovered (see the module docstring)."""
    items = schema.get("items")
    return JSON_MEDIA_TYPE in (
        schema.get("contentMediaType"),
        items.get("contentMediaType") if isinstance(items, dict) else None,
    )


def select_expression(pg: PgType, quoted_column: str, *, json_as_text: bool = False) -> str:
    """The SQL expression whose JSON form (row_to_json, json_build_array) is the value."""
    return map_type(pg, json_as_text=json_as_text).expression(quoted_column)
