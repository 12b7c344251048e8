"""Stream and property names -> PostgreSQL identifiers (pure, deterministic, collision-free).

Rule, in order:
1. A name that matches `^[A-Za-z_][A-Za-z0-9_]*$`, is at most 63 bytes and is not a reserved
   keyword is kept exactly (case included; identifiers are always quoted).
2. Otherwise: lower-case; every character outside `[a-z0-9_]` becomes `_`; a leading digit (or
   an empty result) gets a `_` prefix; a reserved keyword gets a `_` suffix; a result over
   63 bytes is cut to 54 bytes plus `_` plus 8 hex characters of the SHA-256 of the original.
3. If two names of the same table (or two streams of the same schema) map to the same
   identifier, each mapped (changed) name gets the hash suffix; kept names never change.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

MAX_IDENTIFIER_BYTES = 63
_VALID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INVALID_CHAR = re.compile(r"[^a-z0-9_]")

# PostgreSQL's reserved key words (category "reserved" and "reserved (can be function or type)").
_RESERVED_WORDS = """
    all analyse analyze and any array as asc asymmetric authorization binary both case cast
    check collate collation column concurrently constraint create cross current_catalog
    current_date current_role current_schema current_time current_timestamp current_user
    default deferrable desc distinct do else end except false fetch for foreign freeze from
    full grant group having ilike in initially inner intersect into is isnull join lateral
    leading left like limit localtime localtimestamp natural not notnull null offset on only
    or order outer overlaps placing primary references returning right select session_user
    similar some symmetric system_user table tablesample then to trailing true union unique
    user using variadic verbose when where window with
"""
RESERVED = frozenset(_RESERVED_WORDS.split())


def short_hash(name: str) -> str:
    """8 hex characters identifying the original name."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


def is_kept(name: str) -> bool:
    """True when the name is used unchanged."""
    return (
        bool(_VALID.match(name))
        and len(name.encode("utf-8")) <= MAX_IDENTIFIER_BYTES
        and name.lower() not in RESERVED
    )


def _with_hash(base: str, original: str) -> str:
    suffix = "_" + short_hash(original)
    return base[: MAX_IDENTIFIER_BYTES - len(suffix)] + suffix


def map_identifier(name: str) -> str:
    """Map one name by rules 1 and 2 (no collision handling)."""
    if is_kept(name):
        return name
    mapped = _INVALID_CHAR.sub("_", name.lower())
    if not mapped or mapped[0].isdigit():
        mapped = "_" + mapped
    if mapped in RESERVED:
        mapped += "_"
    if len(mapped) > MAX_IDENTIFIER_BYTES:
        mapped = _with_hash(mapped, name)
    return mapped


def map_identifiers(names: Iterable[str], taken: Iterable[str] = ()) -> dict[str, str]:
    """Map a set of names of one table (or schema) without collisions (rule 3).

    `taken` are identifiers already used by something else (e.g. metadata columns).
    """
    names = list(dict.fromkeys(names))
    first = {name: map_identifier(name) for name in names}
    kept = {name for name in names if first[name] == name}
    counts: dict[str, int] = {}
    for identifier in first.values():
        key = identifier.lower()
        counts[key] = counts.get(key, 0) + 1
    used = {identifier.lower() for identifier in taken}
    used |= {name.lower() for name in kept}
    result: dict[str, str] = {}
    for name in names:
        identifier = first[name]
        if name in kept:
            result[name] = identifier
            continue
        key = identifier.lower()
        if counts[key] > 1 or key in used:
            identifier = _with_hash(identifier, name)
            # Astronomically unlikely, but never return a duplicate.
            while identifier.lower() in used:
                identifier = _with_hash(identifier, identifier)
        used.add(identifier.lower())
        result[name] = identifier
    return result


def quote(identifier: str) -> str:
    """Quote an identifier for SQL."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """An SQL string literal (standard_conforming_strings is on in every supported server)."""
    return "'" + text.replace("'", "''") + "'"
