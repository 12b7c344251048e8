"""What to do when a stream's column type differs from the live table's (pure, no database).

The warehouse mirrors the source, and a mirror never rounds. So a changed type is followed
(`ALTER COLUMN ... TYPE`) whenever the new type holds every value the column may hold now,
exactly: numeric precision and scale, varchar length, integer width, time precision. When it
does not, the load is refused with an error that says what to do: following would round or
fail on the values the table holds, and keeping the old type would round or fail on the new
values (`numeric(10,4)` silently turns `2.428600` into `2.4286`).

One exception: a type that comes from JSON Schema alone (another tap, no exact
`x-sql-datatype` hint) is only a loose description of the values, so where the live column's
type holds every value of the new one (a `text` column, a stream that now says integer), the
live type is kept.

Types are compared in PostgreSQL's `format_type()` spelling; `canonical` turns the usual
aliases a tap may write (`int4`, `varchar(20)`, `timestamptz`, `decimal(10,2)`) into it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# format_type() names of the aliases in PostgreSQL's "Data Types" table.
_ALIASES = {
    "int": "integer", "int4": "integer", "int2": "smallint", "int8": "bigint",
    "serial": "integer", "serial4": "integer", "smallserial": "smallint", "serial2": "smallint",
    "bigserial": "bigint", "serial8": "bigint", "decimal": "numeric", "float4": "real",
    "float8": "double precision", "float": "double precision", "bool": "boolean",
    "varchar": "character varying", "char": "character", "bpchar": "character",
    "varbit": "bit varying", "timestamptz": "timestamp with time zone",
    "timetz": "time with time zone", "timestamp": "timestamp without time zone",
    "time": "time without time zone",
}  # fmt: skip
_ZONED = ("timestamp", "time")
_SHAPE = re.compile(r"^(?P<base>[a-z0-9_ ]+?)\s*(?:\((?P<mods>[0-9, ]*)\))?(?P<rest>[a-z ]*)$")
_INTEGER_DIGITS = {"smallint": 5, "integer": 10, "bigint": 19}
_INTEGERS = ("smallint", "integer", "bigint")
_PRECISION_TYPES = (
    "timestamp without time zone", "timestamp with time zone", "time without time zone",
    "time with time zone", "interval",
)  # fmt: skip
_DEFAULT_TIME_PRECISION = 6


@dataclass(frozen=True)
class SqlType:
    """A type as `format_type()` writes it, taken apart: base name, modifiers, array."""

    base: str
    mods: tuple[int, ...]
    array: bool

    def __str__(self) -> str:
        mods = f"({','.join(map(str, self.mods))})" if self.mods else ""
        if self.base.endswith((" without time zone", " with time zone")) and mods:
            head, zone = self.base.split(" ", 1)
            text = f"{head}{mods} {zone}"
        else:
            text = f"{self.base}{mods}"
        return text + ("[]" if self.array else "")


def parse(type_text: str) -> SqlType | None:
    """`numeric(10,4)[]` -> SqlType('numeric', (10, 4), True); None for what we cannot read."""
    text = " ".join(type_text.strip().lower().split())
    if '"' in text:  # a quoted name ("char", a user type): compared as written
        return None
    array = False
    while text.endswith("]"):
        text = re.sub(r"\s*\[\d*\]$", "", text)
        array = True
    match = _SHAPE.match(text)
    if match is None:
        return None
    if match.group("mods") is None:
        base = text
    else:
        base = " ".join(f"{match.group('base')} {match.group('rest')}".split())
    mods = tuple(int(m) for m in (match.group("mods") or "").replace(" ", "").split(",") if m)
    head = base.split(" ", 1)[0]
    if base in _ALIASES:
        base = _ALIASES[base]
    elif head in _ZONED and base in (f"{head} with time zone", f"{head} without time zone"):
        pass
    if base == "double precision" and mods:  # float(p): real up to 24 bits, else double
        base, mods = ("real" if mods[0] <= 24 else "double precision"), ()
    return SqlType(base, mods, array)


def canonical(type_text: str) -> str:
    """The `format_type()` spelling of a type text (unchanged when it cannot be read)."""
    parsed = parse(type_text)
    return type_text if parsed is None else str(parsed)


def _integer_digits(sql_type: SqlType) -> int | None:
    """Digits before the point a numeric type holds (None: unbounded)."""
    if sql_type.base == "numeric":
        if not sql_type.mods:
            return None
        precision, scale = (*sql_type.mods, 0)[:2]
        return precision - scale
    return _INTEGER_DIGITS.get(sql_type.base)


def _scale(sql_type: SqlType) -> int | None:
    if sql_type.base == "numeric":
        return None if not sql_type.mods else (*sql_type.mods, 0)[1]
    return 0


def _holds_number(wide: SqlType, narrow: SqlType) -> bool:
    if narrow.base in _INTEGERS and wide.base in _INTEGERS:
        return _INTEGER_DIGITS[wide.base] >= _INTEGER_DIGITS[narrow.base]
    if wide.base != "numeric" or narrow.base not in ("numeric", *_INTEGERS):
        return False
    wide_digits, narrow_digits = _integer_digits(wide), _integer_digits(narrow)
    wide_scale, narrow_scale = _scale(wide), _scale(narrow)
    if wide_digits is None:  # unbounded numeric holds every number exactly
        return True
    if narrow_digits is None or narrow_scale is None or wide_scale is None:
        return False
    return wide_digits >= narrow_digits and wide_scale >= narrow_scale


def _length(sql_type: SqlType) -> int | None:
    return sql_type.mods[0] if sql_type.mods else None


def _holds_scalar(wide: SqlType, narrow: SqlType) -> bool:
    if wide == narrow:
        return True
    if _holds_number(wide, narrow):
        return True
    if wide.base == "double precision" and narrow.base in ("real", "smallint", "integer"):
        return True
    if wide.base == "text" or (wide.base == "character varying" and not wide.mods):
        return True  # every scalar's text form, exactly as its type writes it
    if wide.base in ("character varying", "bit varying") and narrow.base in (
        wide.base,
        "character" if wide.base == "character varying" else "bit",
    ):
        # Unbounded holds everything; a bounded one holds what is no longer than its bound
        # (character and bit without a length are of length 1; varying ones are unbounded).
        if _length(wide) is None:
            return True
        narrow_length = _length(narrow)
        if narrow_length is None:
            narrow_length = None if narrow.base == wide.base else 1
        return narrow_length is not None and narrow_length <= _length(wide)
    if wide.base == narrow.base == "character":  # character without a length is character(1)
        return (_length(narrow) or 1) <= (_length(wide) or 1)
    if wide.base == narrow.base and wide.base in _PRECISION_TYPES:
        wide_p = wide.mods[0] if wide.mods else _DEFAULT_TIME_PRECISION
        narrow_p = narrow.mods[0] if narrow.mods else _DEFAULT_TIME_PRECISION
        return wide_p >= narrow_p
    return wide.base == "json" and narrow.base == "jsonb"  # jsonb's text is valid json


def holds(wide_text: str, narrow_text: str) -> bool:
    """True when every value of type `narrow_text` is a value of `wide_text`, exactly."""
    wide, narrow = parse(wide_text), parse(narrow_text)
    if wide is None or narrow is None:
        return canonical(wide_text) == canonical(narrow_text)
    if wide.array != narrow.array:
        return False
    return _holds_scalar(wide, narrow)


@dataclass(frozen=True)
class TypeChange:
    """The decision for one column: `same`, `follow` (ALTER to `new`), `keep` or `refuse`."""

    action: str
    old: str
    new: str
    convert: str = "{c}::{new}"
    """The USING expression of the ALTER that follows (`{c}` is the quoted column)."""

    def using(self, quoted_column: str) -> str:
        """The USING expression for this column."""
        return self.convert.format(c=quoted_column, new=self.new)


def plan(live_type: str, stream_type: str, *, exact: bool) -> TypeChange:
    """What to do with a live column of `live_type` for a stream that now sends `stream_type`.

    `exact` says the stream's type is the source's own (an `x-sql-datatype` hint), not one
    derived from JSON Schema.
    """
    old, new = canonical(live_type), canonical(stream_type)
    if old == new:
        return TypeChange("same", old, new)
    if holds(new, old):
        return TypeChange("follow", old, new)
    if not exact:
        parsed_old = parse(old)
        if new == "jsonb" and parsed_old is not None and not parsed_old.array:
            # Another tap's schema now allows objects or several types: each old value
            # becomes its JSON form (a string stays a string, a number a number).
            return TypeChange("follow", old, new, "to_jsonb({c})")
        if holds(old, new):
            return TypeChange("keep", old, new)
    return TypeChange("refuse", old, new)
