"""The compiled converter (the C module `_rowcopy`), where the install could build it.

It turns a common RECORD line (or a bare record) into the very same COPY line as the typed
Python path, in one pass, about four times faster; it answers None for anything it is not
sure of (see _rowcopy.c), and the Python paths take that line. The module is optional: an
install without a C compiler still succeeds, and every record takes the Python paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from target_warehouse_raw.copy_text.values import (
    array_text,
    boolean_raw,
    json_text,
    raw_converter,
    raw_text,
)
from target_warehouse_raw.schema.columns import Column

try:  # the compiled hot path; see _rowcopy.c and setup.py
    from target_warehouse_raw import _rowcopy
except ImportError:  # pragma: no cover - installed where no C compiler was at hand
    _rowcopy = None


def native_converter_built() -> bool:
    """Whether the install built the C converter (see _rowcopy.c)."""
    return _rowcopy is not None


def native_plan(data: Sequence[Column], types: Sequence[Any]) -> Any:
    """The compiled converter for these columns and their msgspec types, or None: no C
    module, or a column it does not handle (base64 bytea, an unknown JSON type name)."""
    if _rowcopy is None or not data:
        return None
    native_raw = {
        raw_text: _rowcopy.K_RAW_TEXT,
        json_text: _rowcopy.K_RAW_JSON,
        array_text: _rowcopy.K_RAW_ARRAY,
        boolean_raw: _rowcopy.K_RAW_BOOLEAN,
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
