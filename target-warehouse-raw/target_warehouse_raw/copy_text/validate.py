"""Record validation against the stream's JSON Schema, in Python, before a record is landed.

What is checked (the same rules, in the same order, for every tap): the record is a JSON
object; a key property is present and not null; a `required` property is present; a value's
JSON type is one the property's schema allows (integer and number both mean "a JSON number";
the column type's input function then refuses 1.5 for an integer column, on the server).

The typed path decodes each record once with a msgspec Struct; only a record it refuses comes
here, to be decoded with the standard library and have its first problem named, so msgspec's
own limits (duplicate keys, a lone surrogate escape) never refuse a record the rules accept.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from target_warehouse_raw.schema.columns import Column


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

    def exact(self, raw: bytes) -> None:
        """The rules, one by one in column order (slow; runs when the typed decode refused)."""
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
