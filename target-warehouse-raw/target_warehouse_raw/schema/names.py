"""Stream and property names -> PostgreSQL identifiers (pure, deterministic, collision-free).

The warehouse is a mirror, so the rule is: **a name that PostgreSQL can hold as a quoted
identifier is used byte for byte**. Reserved words (`order`, `user`, `select`), capitals
(`LotCode`), spaces, dashes, dots and any other Unicode all land unchanged, because every
identifier is always double-quoted in the SQL the target writes. A query or dbt model
written against the source's names then works against the warehouse unchanged; the price
is that such names need double quotes in hand-written SQL too (`SELECT "order" FROM
raw."public-orders"`), exactly as in the source.

Only what PostgreSQL cannot hold is mapped:
- a name over 63 bytes of UTF-8 (PostgreSQL would silently cut it, and two long names that
  share their first 63 bytes would become one column);
- an empty name, a name holding NUL (U+0000) or a lone surrogate (not UTF-8 at all);
- for columns only, the system column names `tableoid xmin cmin xmax cmax ctid`, which
  PostgreSQL refuses as user column names.

Such a name becomes its first characters (at most 54 bytes; NUL and lone surrogates
replaced by `_`) + `_` + 8 hex characters of the SHA-256 of the whole name: deterministic,
stable between runs and versions, and distinct for distinct names. If a mapped name still
equals another identifier of the same table (or schema), it is hashed again until it is
unique; names that are kept never change.

`legacy_identifier` / `legacy_identifiers` are the rule of earlier versions (lower-casing,
`_` for other characters, `_` after a reserved word), kept so that an upgrade can find the
tables and columns those versions created (see legacy_names.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

MAX_IDENTIFIER_BYTES = 63
_HASH_BYTES = 9  # "_" + 8 hex characters
SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _utf8(name: str) -> bytes:
    return name.encode("utf-8", "surrogatepass")


def short_hash(name: str) -> str:
    """8 hex characters identifying the original name."""
    return hashlib.sha256(_utf8(name)).hexdigest()[:8]


def is_kept(name: str, *, column: bool = False) -> bool:
    """True when PostgreSQL can hold `name` as it is (a table name, or a column's)."""
    if not name or _UNSTORABLE.search(name):
        return False
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        return False
    return not (column and name in SYSTEM_COLUMNS)


def _prefix(text: str, limit: int) -> str:
    """The longest run of whole characters from the start of `text` within `limit` bytes."""
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", "ignore")


def _with_hash(base: str, original: str) -> str:
    return _prefix(base, MAX_IDENTIFIER_BYTES - _HASH_BYTES) + "_" + short_hash(original)


def map_identifier(name: str, *, column: bool = False) -> str:
    """The identifier for one name (no collision handling; see map_identifiers)."""
    if is_kept(name, column=column):
        return name
    return _with_hash(_UNSTORABLE.sub("_", name), name)


def map_identifiers(
    names: Iterable[str], taken: Iterable[str] = (), *, columns: bool = False
) -> dict[str, str]:
    """Identifiers for the names of one table (`columns=True`) or one schema, all distinct.

    `taken` are identifiers already used by something else (e.g. metadata columns).
    Identifiers are compared exactly, as PostgreSQL compares quoted identifiers.
    """
    names = list(dict.fromkeys(names))
    kept = {name for name in names if is_kept(name, column=columns)}
    used = set(taken) | kept
    result: dict[str, str] = {}
    for name in names:
        if name in kept:
            result[name] = name
            continue
        identifier = map_identifier(name, column=columns)
        while identifier in used:  # astronomically unlikely; never return a duplicate
            identifier = _with_hash(identifier, identifier)
        used.add(identifier)
        result[name] = identifier
    return result


# --- the rule of earlier versions (for upgrades only) ----------------------------------------

_LEGACY_VALID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LEGACY_INVALID_CHAR = re.compile(r"[^a-z0-9_]")
# PostgreSQL's reserved key words, as earlier versions avoided them.
_LEGACY_RESERVED_WORDS = """
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
_LEGACY_RESERVED = frozenset(_LEGACY_RESERVED_WORDS.split())


def _legacy_kept(name: str) -> bool:
    return (
        bool(_LEGACY_VALID.match(name))
        and len(_utf8(name)) <= MAX_IDENTIFIER_BYTES
        and name.lower() not in _LEGACY_RESERVED
    )


def legacy_identifier(name: str) -> str:
    """The identifier earlier versions gave `name` (no collision handling).

    Earlier rule: a name matching `^[A-Za-z_][A-Za-z0-9_]*$`, at most 63 bytes and not a
    reserved word was kept; anything else was lower-cased, every character outside
    `[a-z0-9_]` became `_`, a leading digit got a `_` prefix, a reserved word a `_` suffix,
    and a result over 63 bytes was cut to 54 bytes + `_` + the name's short hash.
    """
    if _legacy_kept(name):
        return name
    mapped = _LEGACY_INVALID_CHAR.sub("_", name.lower())
    if not mapped or mapped[0].isdigit():
        mapped = "_" + mapped
    if mapped in _LEGACY_RESERVED:
        mapped += "_"
    if len(mapped) > MAX_IDENTIFIER_BYTES:
        mapped = mapped[: MAX_IDENTIFIER_BYTES - _HASH_BYTES] + "_" + short_hash(name)
    return mapped


def legacy_identifiers(names: Iterable[str], taken: Iterable[str] = ()) -> dict[str, str]:
    """The identifiers earlier versions gave the names of one table (or schema), collision
    handling included (a mapped name equal to another, ignoring case, got the hash suffix)."""
    names = list(dict.fromkeys(names))
    first = {name: legacy_identifier(name) for name in names}
    kept = {name for name in names if first[name] == name}
    counts: dict[str, int] = {}
    for identifier in first.values():
        counts[identifier.lower()] = counts.get(identifier.lower(), 0) + 1
    used = {identifier.lower() for identifier in taken} | {name.lower() for name in kept}
    result: dict[str, str] = {}
    for name in names:
        identifier = first[name]
        if name not in kept:
            key = identifier.lower()
            if counts[key] > 1 or key in used:
                suffix = "_" + short_hash(name)
                identifier = identifier[: MAX_IDENTIFIER_BYTES - len(suffix)] + suffix
                while identifier.lower() in used:
                    suffix = "_" + short_hash(identifier)
                    identifier = identifier[: MAX_IDENTIFIER_BYTES - len(suffix)] + suffix
            used.add(identifier.lower())
        result[name] = identifier
    return result


def quote(identifier: str) -> str:
    """Quote an identifier for SQL."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """An SQL string literal (standard_conforming_strings is on in every supported server)."""
    return "'" + text.replace("'", "''") + "'"
