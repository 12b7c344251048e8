"""NUL characters: PostgreSQL text and jsonb cannot hold U+0000.

In JSON it can only appear as the escape \\u0000, and only when that backslash is not itself
escaped (\\\\u0000 is literal text). A cheap substring test comes first, so records without
the escape (nearly all) pay for one `in`.
"""

from __future__ import annotations

import re

import msgspec

NUL_ESCAPE = b"\\u0000"
_NUL_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


def may_hold_nul(raw: bytes) -> bool:
    """False when the JSON text certainly holds no U+0000 (no `\\u0000` escape at all)."""
    return NUL_ESCAPE in raw


def has_nul(raw: bytes) -> bool:
    """True when the JSON text holds a real U+0000 character."""
    return NUL_ESCAPE in raw and _NUL_ESCAPE.search(raw) is not None


def strip_nul(raw: bytes) -> bytes:
    """Remove every U+0000 character from the JSON text, keeping escaped backslashes."""
    return _NUL_ESCAPE.sub(rb"\1", raw)


def _contains_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


def nul_property(raw: bytes) -> str:
    """The first top-level property whose name or value holds U+0000 (error path only)."""
    try:
        record = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return "?"
    if isinstance(record, dict):
        for key, value in record.items():
            if _contains_nul(key) or _contains_nul(value):
                return key
    return "?"
