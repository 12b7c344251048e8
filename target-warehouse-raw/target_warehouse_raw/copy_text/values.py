"""One JSON value -> its field in PostgreSQL's COPY text format, by column kind.

A field is the text the column type's own input function reads: a string's own text, a
number's exact digits, json as its JSON text, a JSON array as an array literal, base64 as
bytea hex, booleans as t/f. COPY text format then needs only backslash, tab, newline and
carriage return escaped. Python never converts a value to a Python number or date: the
server's input function does, exactly as a cast would.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

NULL = "\\N"
ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_JSON_TYPE = {ord('"'): "string", ord("{"): "object", ord("["): "array", ord("t"): "boolean",
              ord("f"): "boolean", ord("n"): "null"}  # fmt: skip
_decode_any = msgspec.json.Decoder(float_hook=Decimal).decode
_decode_numbers_exactly = functools.partial(json.loads, parse_int=Decimal, parse_float=Decimal)
_encode_exact = msgspec.json.Encoder(decimal_format="number").encode  # digits as decoded
_decode_str = msgspec.json.Decoder(str).decode
NUMBER_START = frozenset(b"-0123456789")


class ConversionError(ValueError):
    """A value that cannot become the column's text form (named by the caller)."""


def text(value: str) -> str:
    """A string as one COPY text-format field (escaped only when needed)."""
    if "\\" in value or not value.isprintable():
        return value.translate(ESCAPES)
    return value


def raw_type(raw: bytes) -> str:
    """The jsonb_typeof() name of a JSON value's text (error messages)."""
    return _JSON_TYPE.get(raw[0], "number") if raw else "null"


def raw_text(raw: bytes) -> str:
    """A JSON value as text: a string's own text, anything else its JSON text."""
    first = raw[0]
    if first == 0x22:  # '"'
        return text(_decode_str(raw))
    if first in NUMBER_START:  # a JSON number: ASCII digits, sign, '.', 'e'; nothing to escape
        return raw.decode("ascii")
    return json_text(raw)


def json_text(raw: bytes) -> str:
    """JSON text as a COPY field: backslashes doubled; tab/CR/LF can only be whitespace."""
    value = raw.decode()
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value or "\r" in value or "\n" in value:
        value = value.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return value


def _element(value: Any) -> str:
    """One PostgreSQL array element, always double-quoted (NULL unquoted)."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return _array_literal(value)
    if isinstance(value, bool):
        item = "true" if value else "false"
    elif isinstance(value, (int, Decimal)):
        item = str(value)
    elif isinstance(value, str):
        item = value
    else:  # an object: its JSON text (jsonb[] elements)
        item = _encode_exact(value).decode()
    return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array_literal(values: list) -> str:
    return "{" + ",".join(_element(value) for value in values) + "}"


def array_text(raw: bytes) -> str:
    """A JSON array (nested for more dimensions) as a PostgreSQL array literal."""
    if raw[0] != 0x5B:  # not '[': PostgreSQL's own text form, or a number
        return raw_text(raw)
    if raw == b"[]":
        return "{}"
    if b"-0" in raw:  # msgspec reads the integer -0 as 0; the negative zero of a float counts
        return text(_array_literal(_decode_numbers_exactly(raw)))
    return text(_array_literal(_decode_any(raw)))


def _json_element(value: Any) -> str:
    """One json/jsonb array element: its JSON text, double-quoted (NULL and nested
    arrays, which are the array's dimensions, as in _element)."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return "{" + ",".join(_json_element(item) for item in value) + "}"
    item = _encode_exact(value).decode()
    return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'


def json_array_text(raw: bytes) -> str:
    """A JSON array for a json[]/jsonb[] column: every element as its JSON text."""
    if raw[0] != 0x5B:  # not '[': PostgreSQL's own text form
        return raw_text(raw)
    return text(_json_element(_decode_numbers_exactly(raw)))


def bytea_base64(value: str) -> str:
    """base64 text as bytea's hex input (`\\x...`, backslash escaped for COPY)."""
    try:
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ConversionError("is of type bytea and the value is not valid base64") from None
    return "\\\\x" + data.hex()


def _bytea_raw(raw: bytes) -> str:
    if raw[0] != 0x22:
        raise ConversionError(f"is of type bytea; a JSON {raw_type(raw)} is not base64 text")
    return bytea_base64(_decode_str(raw))


def boolean_raw(raw: bytes) -> str:
    """A JSON boolean as t/f; a string is the type's own text (`yes`, `on`, ...)."""
    first = raw[0]
    if first == 0x74:  # t
        return "t"
    if first == 0x66:  # f
        return "f"
    if first == 0x22:
        return text(_decode_str(raw))
    raise ConversionError(f"is of type boolean; a JSON {raw_type(raw)} cannot be stored in it")


# Raw converters by column kind (see schema.columns.Column.kind); null is handled before.
_RAW: dict[str, Callable[[bytes], str]] = {
    "json": json_text,
    "array": array_text,
    "json_array": json_array_text,
    "bytea64": _bytea_raw,
    "boolean": boolean_raw,
}


def raw_converter(kind: str) -> Callable[[bytes], str]:
    """How a column of this kind turns a JSON value's text into its COPY field."""
    return _RAW.get(kind, raw_text)
