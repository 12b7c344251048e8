"""Records to COPY text rows, in Python, in one decode per record.

Each record's JSON is decoded ONCE with a msgspec Struct generated from the stream's schema
(validation and conversion in one pass): string fields arrive as `str`, booleans as `bool`,
integer columns as `int`; everything whose exact text matters (numbers of numeric, real and
money columns, json/jsonb, arrays, values of any JSON type) stays `msgspec.Raw`, the value's
original JSON text. A function generated once per schema then writes the record as one line of
COPY text format in the table's column order. The server only runs each column type's input
function on that text, exactly what `(rec->>'k')::type` did before, so every value lands as
exactly as before (numeric digits and scale, NaN/Infinity, timestamps, intervals, ...).

A record the typed decoder refuses takes the exact path: validate.py names the problem; a
record that passes it (a float for an integer column, a lone surrogate escape) is decoded
again with every field as `msgspec.Raw`, and the server judges the value.

Ahead of all this, `RowEncoder.native` (the C module `_rowcopy`, when the install could build
it) turns a common RECORD line into the very same COPY line in one pass, about four times
faster; it answers None for anything unusual, and the Python path above takes that line.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import msgspec

from target_warehouse_raw.types import Column
from target_warehouse_raw.validate import RecordValidator, Violation

try:  # the compiled hot path; see _rowcopy.c and setup.py
    from target_warehouse_raw import _rowcopy
except ImportError:  # pragma: no cover - installed where no C compiler was at hand
    _rowcopy = None

NULL = "\\N"
_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_JSON_TYPE = {ord('"'): "string", ord("{"): "object", ord("["): "array", ord("t"): "boolean",
              ord("f"): "boolean", ord("n"): "null"}  # fmt: skip
_FIRST_BYTES = {"string": b'"', "object": b"{", "array": b"[", "boolean": b"tf",
                "null": b"n", "number": b"-0123456789"}  # fmt: skip
_decode_any = msgspec.json.Decoder(float_hook=Decimal).decode
_decode_numbers_exactly = functools.partial(json.loads, parse_int=Decimal, parse_float=Decimal)
_encode_exact = msgspec.json.Encoder(decimal_format="number").encode  # digits as decoded
_decode_str = msgspec.json.Decoder(str).decode
INTEGER_KINDS = frozenset({"int2", "int4", "int8"})
_NUMBER_START = frozenset(b"-0123456789")


class ConversionError(ValueError):
    """A value that cannot become the column's text form (named by the caller)."""


def text(value: str) -> str:
    """A string as one COPY text-format field (escaped only when needed)."""
    if "\\" in value or not value.isprintable():
        return value.translate(_ESCAPES)
    return value


def _raw_type(raw: bytes) -> str:
    return _JSON_TYPE.get(raw[0], "number") if raw else "null"


def _raw_text(raw: bytes) -> str:
    """A JSON value as text: a string's own text, anything else its JSON text."""
    first = raw[0]
    if first == 0x22:  # '"'
        return text(_decode_str(raw))
    if first in _NUMBER_START:  # a JSON number: ASCII digits, sign, '.', 'e'; nothing to escape
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
        return _raw_text(raw)
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
        return _raw_text(raw)
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
        raise ConversionError(f"is of type bytea; a JSON {_raw_type(raw)} is not base64 text")
    return bytea_base64(_decode_str(raw))


def _boolean_raw(raw: bytes) -> str:
    first = raw[0]
    if first == 0x74:  # t
        return "t"
    if first == 0x66:  # f
        return "f"
    if first == 0x22:
        return text(_decode_str(raw))
    raise ConversionError(f"is of type boolean; a JSON {_raw_type(raw)} cannot be stored in it")


# Raw converters by column kind (see types.Column.kind); null is handled before.
_RAW: dict[str, Callable[[bytes], str]] = {
    "json": json_text,
    "array": array_text,
    "json_array": json_array_text,
    "bytea64": _bytea_raw,
    "boolean": _boolean_raw,
}


def raw_converter(kind: str) -> Callable[[bytes], str]:
    """How a column of this kind turns a JSON value's text into its COPY field."""
    return _RAW.get(kind, _raw_text)


def _field_type(column: Column) -> Any:
    """The msgspec type a column's value is decoded as (validation included)."""
    allowed = column.json_types
    kind = column.kind
    if allowed is None or kind in ("json", "array", "json_array"):
        return msgspec.Raw
    nullable = "null" in allowed and not column.key
    plain = allowed - {"null"}
    if plain == {"string"}:
        base: Any = str
    elif plain == {"boolean"} and kind == "boolean":
        base = bool
    elif plain == {"number"} and kind in INTEGER_KINDS:
        base = int
    else:
        return msgspec.Raw
    return base | None if nullable else base


class RowEncoder:
    """One schema's record -> COPY line conversion (built once per SCHEMA)."""

    def __init__(self, columns: Sequence[Column], params: dict[str, str]) -> None:
        self.columns = list(columns)
        self.validator = RecordValidator(columns)
        data = [c for c in columns if not c.metadata]
        self.has_metadata = len(data) != len(self.columns)
        props = [c.prop for c in data]
        if self.has_metadata and "_sdc_deleted_at" not in props:
            props.append("_sdc_deleted_at")
        types = [_field_type(c) for c in data] + [msgspec.Raw] * (len(props) - len(data))
        rename = {f"f{i}": prop for i, prop in enumerate(props)}
        required = {i for i, c in enumerate(data) if c.required}

        def struct(kinds: list[Any]) -> Any:
            fields = [
                (f"f{i}", kind) if i in required else (f"f{i}", kind, None)
                for i, kind in enumerate(kinds)
            ]
            return msgspec.defstruct("Record", fields, rename=rename, kw_only=True)

        record_struct = struct(types)
        self._typed = msgspec.json.Decoder(record_struct).decode
        line_struct = msgspec.defstruct(
            "Line",
            [("type", str), ("stream", str), ("record", record_struct),
             ("version", int | None, None), ("time_extracted", str | None, None)],
        )  # fmt: skip
        self.decode_line = msgspec.json.Decoder(line_struct).decode
        """A whole RECORD line, envelope and typed record in one pass (StreamLoader.add_line)."""
        self.native = None if self.has_metadata else native_plan(data, types)
        """`convert(line, stream) -> (row, version) | None`: the same row as decode_line and
        format_plain/format_escaped give, or None where those must decide (see _rowcopy.c)."""
        self._raw = msgspec.json.Decoder(struct([msgspec.Raw] * len(props))).decode
        self.format_escaped = self._build(data, types, params, plain=False)
        self.format_plain = self._build(data, types, params, plain=True)
        self._format_raw = self._build(data, [msgspec.Raw] * len(props), params, plain=False)
        self.fingerprint = hashlib.sha256(
            "\x00".join(f"{c.name}\x01{c.sql_type}" for c in columns).encode()
        ).hexdigest()[:12]

    def _build(
        self, data: list[Column], types: list[Any], params: dict[str, str], *, plain: bool
    ) -> Callable:
        """Generate `format(r, line, version, extracted, now) -> bytes` for this schema.

        `plain` builds the variant for records whose JSON holds no backslash at all. JSON
        cannot carry a raw control character inside a string, so such a record's strings
        contain no backslash, newline, carriage return or tab: nothing COPY text must escape,
        and the per-string check is left out (most records of most tables take this path).
        """
        names: dict[str, Any] = {
            "N": NULL, "E": _ESCAPES, "D": _NUMBER_START, "text": text, "deleted": _raw_text
        }  # fmt: skip
        body: list[str] = []
        fields: list[str] = []
        index = {c.prop: i for i, c in enumerate(data)}
        for i, column in enumerate(data):
            kind_type = types[i]
            value = f"v{i}"
            body.append(f"    {value} = r.f{i}")
            if kind_type is msgspec.Raw:
                names[f"c{i}"] = raw_converter(column.kind)
                allowed = column.json_types
                if column.key and allowed is not None:
                    allowed = allowed - {"null"}
                body.append(f"    if {value} is None:\n        s{i} = N\n    else:")
                body.append(f"        b = bytes({value})")
                if names[f"c{i}"] is _raw_text and (allowed is None or "number" in allowed):
                    # A JSON number is its own COPY text (ASCII digits, sign, '.', 'e'): the
                    # common case of numeric columns, without a call.
                    body.append(f"        if b[0] in D: s{i} = b.decode('ascii')")
                    body.append("        else:")
                    indent = "            "
                else:
                    indent = "        "
                if allowed is not None:
                    names[f"a{i}"] = frozenset(b for name in allowed for b in _FIRST_BYTES[name])
                    body.append(f"{indent}if b[0] not in a{i}: raise KeyError({i})")
                body.append(f"{indent}s{i} = N if b == b'null' else c{i}(b)")
                expr = f"s{i}"
            else:
                optional = hasattr(kind_type, "__args__")  # `base | None`
                base = kind_type.__args__[0] if optional else kind_type
                nullable = optional or not column.required  # a missing key decodes as None
                if base is str:
                    if column.kind == "bytea64":
                        names[f"c{i}"] = bytea_base64
                        convert = f"c{i}({value})"
                    elif plain:
                        convert = value
                    else:  # text(), inlined: this runs for most values of most records
                        convert = (
                            f"({value} if {value}.isprintable() and '\\\\' not in {value} "
                            f"else {value}.translate(E))"
                        )
                elif base is bool:
                    convert = f"('t' if {value} else 'f')"
                else:
                    convert = f"str({value})"
                expr = f"(N if {value} is None else {convert})" if nullable else convert
            fields.append(expr)
        deleted = index.get("_sdc_deleted_at", len(data))
        for column in self.columns:
            if not column.metadata:
                continue
            meta = {
                "_sdc_extracted_at": "(N if extracted is None else text(extracted))",
                "_sdc_received_at": "now",
                "_sdc_batched_at": "now",
                "_sdc_deleted_at": f"(N if r.f{deleted} is None or r.f{deleted} == b'null' "
                f"else deleted(bytes(r.f{deleted})))",
                "_sdc_sequence": f"str({int(params.get('sequence_base', '0'))} + line)",
                "_sdc_table_version": "(N if version is None else str(version))",
                "_sdc_sync_started_at": params.get("sync_started", "N"),
            }[column.name]
            fields.append(meta if not meta.isdigit() else repr(meta))
        source = (
            "def format(r, line, version, extracted, now):\n"
            + "\n".join(body)
            + "\n    return ('\\t'.join(("
            + ", ".join(fields)
            + ",)) + '\\n').encode()\n"
        )
        namespace: dict[str, Any] = dict(names)
        exec(compile(source, "<row format>", "exec"), namespace)
        return namespace["format"]

    def encode(
        self, raw: bytes, line: int, version: int | None, extracted: str | None, now: str
    ) -> bytes:
        """One record as one COPY line; raises Violation (naming the property) if it cannot."""
        native = self.native
        if native is not None:
            row = native.convert_record(raw)
            if row is not None:
                return row
        try:
            if b"\\" not in raw:
                return self.format_plain(self._typed(raw), line, version, extracted, now)
            return self.format_escaped(self._typed(raw), line, version, extracted, now)
        except (msgspec.DecodeError, KeyError, ConversionError, UnicodeError):
            pass  # the exact path says why, or converts what the typed decoder refused
        self.validator.exact(raw)  # raises Violation with the exact problem
        try:
            record = self._raw(raw)
        except msgspec.DecodeError as exc:
            raise Violation(None, f"the record cannot be decoded ({exc})") from None
        try:
            return self._format_raw(record, line, version, extracted, now)
        except (ConversionError, UnicodeError) as exc:
            column = self._culprit(record)
            if column is None:
                raise Violation(None, f"a value cannot be converted ({exc})") from None
            if isinstance(exc, UnicodeError):
                problem = "text is not valid Unicode (a lone surrogate escape?)"
            else:
                problem = f'column "{column.name}" {exc}'
            raise Violation(column.prop, problem) from None

    def _culprit(self, record: Any) -> Column | None:
        """The first property whose value cannot be converted (error path only)."""
        for i, column in enumerate(c for c in self.columns if not c.metadata):
            value = getattr(record, f"f{i}")
            if value is None or value == b"null":
                continue
            try:
                raw_converter(column.kind)(bytes(value)).encode()
            except (ConversionError, UnicodeError):
                return column
        return None


def native_converter_built() -> bool:
    """Whether the install built the C converter (see _rowcopy.c)."""
    return _rowcopy is not None


def native_plan(data: Sequence[Column], types: Sequence[Any]) -> Any:
    """The compiled converter for these columns and their msgspec types, or None: no C
    module, or a column it does not handle (base64 bytea, an unknown JSON type name)."""
    if _rowcopy is None or not data:
        return None
    native_raw = {
        _raw_text: _rowcopy.K_RAW_TEXT,
        json_text: _rowcopy.K_RAW_JSON,
        array_text: _rowcopy.K_RAW_ARRAY,
        _boolean_raw: _rowcopy.K_RAW_BOOLEAN,
    }
    type_bits = {
        "string": _rowcopy.T_STRING, "number": _rowcopy.T_NUMBER, "object": _rowcopy.T_OBJECT,
        "array": _rowcopy.T_ARRAY, "boolean": _rowcopy.T_BOOLEAN, "null": _rowcopy.T_NULL,
    }  # fmt: skip
    fields = []
    for column, field_type in zip(data, types, strict=True):
        flags = _rowcopy.F_REQUIRED if column.required else 0
        allowed_bits = -1
        if field_type is msgspec.Raw:
            kind = native_raw.get(raw_converter(column.kind))
            allowed = column.json_types
            if column.key and allowed is not None:
                allowed = allowed - {"null"}
            if allowed is not None:
                if not allowed <= type_bits.keys():
                    return None
                allowed_bits = sum(type_bits[name] for name in allowed)
        else:
            optional = hasattr(field_type, "__args__")  # `base | None`
            base = field_type.__args__[0] if optional else field_type
            kind = {str: _rowcopy.K_STR, bool: _rowcopy.K_BOOL, int: _rowcopy.K_INT}.get(base)
            if optional:
                flags |= _rowcopy.F_NULL_OK
        if kind is None or column.kind == "bytea64":
            return None
        try:
            name = column.prop.encode()
        except UnicodeError:  # a lone surrogate in a property name: the Python path
            return None
        fields.append((name, kind, flags, allowed_bits))
    return _rowcopy.RowPlan(fields)


def batch_time() -> str:
    """The time a batch is formed, for `_sdc_received_at` / `_sdc_batched_at`."""
    return dt.datetime.now(dt.timezone.utc).isoformat()
