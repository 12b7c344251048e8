"""Record validation against the stream's JSON Schema, in Python, before a record is landed.

What is checked (the same rules, in the same order, for every tap): the record is a JSON
object; a key property is present and not null; a `required` property is present; a value's
JSON type is one the property's schema allows (integer and number both mean "a JSON number";
the column type's input function then refuses 1.5 for an integer column, on the server).

The fast path decodes each record's raw bytes once with msgspec into a Struct generated from
the columns (C speed, about 1 µs per record); values are not kept. Only when msgspec refuses a
record does the exact path decode it with the standard library and name the first problem,
so msgspec's own limits (a number beyond float range, duplicate keys) never refuse a record
that the rules accept.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Sequence
from typing import Any

import msgspec

from target_warehouse_raw.types import Column

_ALL = frozenset({"number", "string", "boolean", "null", "object", "array"})
_PYTHON_TYPES: dict[str, tuple[Any, ...]] = {
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict[str, msgspec.Raw],),
    "array": (list[msgspec.Raw],),
}


class Violation(ValueError):
    """A record breaks its schema: which property, what problem, whether it is a key."""

    def __init__(self, prop: str | None, problem: str, *, missing_key: bool = False) -> None:
        super().__init__(problem)
        self.prop = prop
        self.problem = problem
        self.missing_key = missing_key


def json_type(value: object) -> str:
    """The jsonb_typeof() name of a value decoded by the json module."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class RecordValidator:
    """Checks one stream's records; built once per SCHEMA."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = [column for column in columns if not column.metadata]
        self._decoder = self._fast_decoder()

    def _fast_decoder(self) -> msgspec.json.Decoder | None:
        fields: list[tuple] = []
        rename: dict[str, str] = {}
        for index, column in enumerate(self.columns):
            allowed = _ALL if column.json_types is None else column.json_types & _ALL
            if column.key:
                allowed = allowed - {"null"}
            if not allowed:
                return None  # nothing is allowed: let the exact path say why
            if allowed == _ALL:
                kind: Any = msgspec.Raw
            else:
                options = [t for name in sorted(allowed) for t in _PYTHON_TYPES[name]]
                kind = functools.reduce(operator.or_, options)
            name = f"f{index}"
            rename[name] = column.prop
            fields.append((name, kind) if column.required else (name, kind, None))
        try:
            struct = msgspec.defstruct("Record", fields, rename=rename)
            return msgspec.json.Decoder(struct)
        except (TypeError, ValueError):  # pragma: no cover - a union msgspec cannot express
            return None

    def check(self, raw: bytes) -> None:
        """Raise Violation for the first problem of this record's JSON; return if it is fine."""
        if self._decoder is not None:
            try:
                self._decoder.decode(raw)
            except msgspec.DecodeError:  # ValidationError included
                pass
            else:
                return
        self.exact(raw)

    def exact(self, raw: bytes) -> None:
        """The rules, one by one in column order (slow; runs when the fast path refused)."""
        try:
            record = json.loads(raw)
        except ValueError as exc:
            raise Violation(None, f"malformed JSON ({exc})") from None
        if not isinstance(record, dict):
            raise Violation(None, "the record is not a JSON object")
        for column in self.columns:
            present = column.prop in record
            value = record.get(column.prop)
            if column.key and value is None:
                raise Violation(column.prop, "key property is missing or null", missing_key=True)
            if column.required and not present:
                raise Violation(column.prop, "required property is missing")
            if column.json_types is None or not present:
                continue
            actual = json_type(value)
            if actual in column.json_types:
                continue
            if actual == "null":
                raise Violation(column.prop, "null is not allowed by the schema")
            allowed = ", ".join(sorted(column.json_types))
            raise Violation(
                column.prop,
                f"JSON type {actual} is not allowed by the schema (allowed: {allowed})",
            )
