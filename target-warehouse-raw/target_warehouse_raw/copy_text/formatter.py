"""The typed Python path: a msgspec Struct and a formatter generated once per schema.

Each record's JSON is decoded ONCE with a Struct generated from the stream's schema
(validation and conversion in one pass): string fields arrive as `str`, booleans as `bool`,
integer columns as `int`; everything whose exact text matters (numbers of numeric, real and
money columns, json/jsonb, arrays, values of any JSON type) stays `msgspec.Raw`, the value's
original JSON text. A function generated once per schema then writes the record as one line of
COPY text format in the table's column order (values.py says how each value is written).

Generated code, because the alternative, a loop over columns calling a converter per value,
costs several times more per record; this is the hot path whenever the C converter is not
built or hands a line over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from target_warehouse_raw.copy_text.values import (
    ESCAPES,
    NULL,
    NUMBER_START,
    ConversionError,
    bytea_base64,
    raw_converter,
    raw_text,
    text,
)
from target_warehouse_raw.schema.columns import Column

_FIRST_BYTES = {"string": b'"', "object": b"{", "array": b"[", "boolean": b"tf",
                "null": b"n", "number": b"-0123456789"}  # fmt: skip
INTEGER_KINDS = frozenset({"int2", "int4", "int8"})
TYPED_FAILURES = (msgspec.DecodeError, KeyError, ConversionError, UnicodeError)
"""What the typed path raises for a record it does not take (the exact path then decides)."""


def field_type(column: Column) -> Any:
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


class TypedRows:
    """One schema's typed decoders and formatters (the all-`Raw` variant for the exact path)."""

    def __init__(self, columns: Sequence[Column], params: dict[str, str]) -> None:
        data = [c for c in columns if not c.metadata]
        props = [c.prop for c in data]
        has_metadata = len(data) != len(columns)
        if has_metadata and "_sdc_deleted_at" not in props:
            props.append("_sdc_deleted_at")
        self.field_types = [field_type(c) for c in data]
        types = self.field_types + [msgspec.Raw] * (len(props) - len(data))
        rename = {f"f{i}": prop for i, prop in enumerate(props)}
        required = {i for i, c in enumerate(data) if c.required}

        def struct(kinds: list[Any]) -> Any:
            fields = [
                (f"f{i}", kind) if i in required else (f"f{i}", kind, None)
                for i, kind in enumerate(kinds)
            ]
            return msgspec.defstruct("Record", fields, rename=rename, kw_only=True)

        record_struct = struct(types)
        self.decode_record = msgspec.json.Decoder(record_struct).decode
        line_struct = msgspec.defstruct(
            "Line",
            [("type", str), ("stream", str), ("record", record_struct),
             ("version", int | None, None), ("time_extracted", str | None, None)],
        )  # fmt: skip
        self.decode_line = msgspec.json.Decoder(line_struct).decode
        """A whole RECORD line, envelope and typed record in one pass."""
        self.format_escaped = build_format(columns, types, params, plain=False)
        self.format_plain = build_format(columns, types, params, plain=True)
        raw_types = [msgspec.Raw] * len(props)
        self.decode_raw = msgspec.json.Decoder(struct(raw_types)).decode
        self.format_raw = build_format(columns, raw_types, params, plain=False)

    def line(
        self, text: bytes, stream: str, line: int, now: str
    ) -> tuple[bytes, int | None] | None:
        """A whole RECORD line of `stream` as (row, version); None when it is not one the
        typed decoder takes (the message path then decides)."""
        try:
            message = self.decode_line(text)
        except msgspec.DecodeError:  # includes ValidationError
            return None
        if message.type != "RECORD" or message.stream != stream:
            return None
        fmt = self.format_plain if b"\\" not in text else self.format_escaped
        try:
            row = fmt(message.record, line, message.version, message.time_extracted, now)
        except (KeyError, ConversionError, UnicodeError):
            return None
        return row, message.version

    def record(
        self, raw: bytes, line: int, version: int | None, extracted: str | None, now: str
    ) -> bytes:
        """One record's row; raises one of TYPED_FAILURES for a record it does not take."""
        fmt = self.format_plain if b"\\" not in raw else self.format_escaped
        return fmt(self.decode_record(raw), line, version, extracted, now)


def build_format(
    columns: Sequence[Column], types: list[Any], params: dict[str, str], *, plain: bool
) -> Callable:
    """Generate `format(r, line, version, extracted, now) -> bytes` for this schema.

    `plain` builds the variant for records whose JSON holds no backslash at all. JSON
    cannot carry a raw control character inside a string, so such a record's strings
    contain no backslash, newline, carriage return or tab: nothing COPY text must escape,
    and the per-string check is left out (most records of most tables take this path).
    """
    data = [c for c in columns if not c.metadata]
    names: dict[str, Any] = {
        "N": NULL, "E": ESCAPES, "D": NUMBER_START, "text": text, "deleted": raw_text
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
            if names[f"c{i}"] is raw_text and (allowed is None or "number" in allowed):
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
    for column in columns:
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
