"""CopyRowEncoder: a stream's records -> rows of COPY text, and the one place that decides how.

Three implementations give the same row for a record, and each hands what it is not sure of
to the next:

1. the compiled converter (native.py, C; built at install where a compiler is present):
   common RECORD lines and records in one pass;
2. the typed Python path (formatter.py): a msgspec Struct per schema and a generated
   formatter; it refuses a value of a JSON type the schema does not allow, and anything its
   decoder cannot take (a duplicate key, a lone surrogate escape);
3. the exact path (here): the standard library's decoder names the first problem
   (validate.py), and a record that breaks no rule (a float for an integer column, a lone
   surrogate) is converted with every value as its raw JSON text, for the server to judge.

Callers never choose: `line()` takes a whole RECORD line (paths 1 and 2; None means "decode
the message and call `record()`"), and `record()` takes a record's JSON (1, 2, then 3). Tests
hold the C and typed paths to the same bytes (tests/target/test_rowcopy.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from target_warehouse_raw.copy_text.formatter import TYPED_FAILURES, TypedRows
from target_warehouse_raw.copy_text.native import native_plan
from target_warehouse_raw.copy_text.nul import has_nul, may_hold_nul, nul_property, strip_nul
from target_warehouse_raw.copy_text.validate import RecordValidator, Violation
from target_warehouse_raw.copy_text.values import ConversionError, raw_converter
from target_warehouse_raw.messages.decode import record_stream_name
from target_warehouse_raw.schema.columns import Column

NUL_REFUSED = (
    "text contains a NUL character (\\u0000), which PostgreSQL cannot store; set "
    "strip_nul_characters to remove such characters"
)


@dataclass
class PathCounts:
    """Records converted by the Python paths (the rest went through the compiled one)."""

    typed: int = 0
    exact: int = 0


class CopyRowEncoder:
    """One schema's record -> COPY line conversion (built once per SCHEMA of a stream)."""

    def __init__(
        self,
        columns: Sequence[Column],
        params: dict[str, str],
        *,
        stream: str,
        strip_nul_characters: bool,
        counts: PathCounts | None = None,
    ) -> None:
        self.columns = list(columns)
        self.stream = stream
        self.strip_nul_characters = strip_nul_characters
        self.typed = TypedRows(self.columns, params)
        data = [c for c in self.columns if not c.metadata]
        has_metadata = len(data) != len(self.columns)
        self.native = None if has_metadata else native_plan(data, self.typed.field_types)
        """The compiled converter, or None (no C module, metadata columns, a column it does
        not handle). Exposed for the tests that compare it with the typed path."""
        self._stream_spelling = record_stream_name(stream)
        self._validator = RecordValidator(self.columns)
        self.counts = PathCounts() if counts is None else counts
        self.fingerprint = hashlib.sha256(
            "\x00".join(f"{c.name}\x01{c.sql_type}" for c in self.columns).encode()
        ).hexdigest()[:12]

    def line(self, text: bytes, line: int, now: str) -> tuple[bytes, int | None] | None:
        """A whole RECORD line of this stream as (row, version), in one pass; None for a line
        that needs more (NUL characters, anything the typed decoder refuses), having changed
        nothing: the caller then decodes the message and calls `record()`."""
        native = self.native
        if native is not None and self._stream_spelling is not None:
            converted = native.convert(text, self._stream_spelling)
            if converted is not None:
                return converted
        if may_hold_nul(text):
            return None
        converted = self.typed.line(text, self.stream, line, now)
        if converted is not None:
            self.counts.typed += 1
        return converted

    def record(
        self, raw: bytes, line: int, version: int | None, extracted: str | None, now: str
    ) -> bytes:
        """One record's JSON as one COPY line; raises Violation naming the property if it
        cannot be one."""
        if may_hold_nul(raw) and has_nul(raw):
            if not self.strip_nul_characters:
                raise Violation(nul_property(raw), NUL_REFUSED)
            raw = strip_nul(raw)
        native = self.native
        if native is not None:
            row = native.convert_record(raw)
            if row is not None:
                return row
        try:
            row = self.typed.record(raw, line, version, extracted, now)
        except TYPED_FAILURES:
            pass  # the exact path says why, or converts what the typed decoder refused
        else:
            self.counts.typed += 1
            return row
        self.counts.exact += 1
        return self._exact(raw, line, version, extracted, now)

    def _exact(
        self, raw: bytes, line: int, version: int | None, extracted: str | None, now: str
    ) -> bytes:
        self._validator.exact(raw)  # raises Violation with the exact problem
        typed = self.typed
        try:
            record = typed.decode_raw(raw)
        except msgspec.DecodeError as exc:
            raise Violation(None, f"the record cannot be decoded ({exc})") from None
        try:
            return typed.format_raw(record, line, version, extracted, now)
        except (ConversionError, UnicodeError) as exc:
            column = self._culprit(record)
            if column is None:
                raise Violation(None, f"a value cannot be converted ({exc})") from None
            if isinstance(exc, UnicodeError):
                problem = "text is not valid Unicode (a lone surrogate escape?)"
            else:
                problem = f'column "{column.name}" {exc}'
            raise Violation(column.prop, problem) from None

    def _culprit(self, record: object) -> Column | None:
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
