"""SQL that generates the realistic and the wide source table on the server.

Why not the demo's tables alone: they were shaped by the people who tuned the pipeline (plain
ASCII text, no escapes, small rows). A user's table has text with tabs, quotes, backslashes,
newlines and emoji, long free text that PostgreSQL moves to TOAST, jsonb documents, uuids,
NULLs everywhere, and sometimes dozens of columns. These two tables are that user's tables.

Every value comes from `hashint8extended(row number, salt)`, a built-in C hash (one function
call, about 0.1 µs), with the salt derived from the seed, the source and the column: the same
seed and row count give byte-identical tables on any server. Each row's hashes are computed
once in a `LATERAL (... OFFSET 0)` subquery (without `OFFSET 0` the planner would inline it
and hash again at every use). A million rows of the realistic table take a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# One in nine rows of free text holds every character class that needs escaping somewhere on
# the way: a tab, double quotes, a backslash, a newline, Latin, Greek, CJK and characters
# outside the Basic Multilingual Plane (emoji, which JSON writes as surrogate pairs when it
# escapes them). One in four of those also holds a control character (U+001F, what a barcode
# scanner sends as a field separator), which JSON must write as \u001f.
_NASTY_TEMPLATES = (
    r"E'Operator note:\t\"re-seated\" nib at C:\\line\\'",
    r"E'Rückmeldung\t\"Prüfung OK\" für Ölstand \\ Δp '",
    r"E'検査メモ\t\"再調整\" 済み \\ ライン '",
)
_NASTY_TAIL = r"E'\nsecond line: Zürich → Ελλάδα ✓ 🖊️ 😀 '"
_NAMES = ("Zoë Müller", "Łukasz Wójcik", "山田 太郎", "José Núñez", "Ana Lima", "Seán O''Brien")


def _hash(seed: int, stream: int, column: int) -> str:
    """SQL for an independent 31-bit hash of the row number `g` for one column of one stream."""
    return f"(hashint8extended(g, {seed * 1_000_000 + stream * 1_000 + column}) & 2147483647)"


def _hashes(seed: int, stream: int, count: int) -> str:
    """The LATERAL subquery that computes h1 .. h<count> once per row."""
    columns = ", ".join(f"{_hash(seed, stream, k)} AS h{k}" for k in range(1, count + 1))
    return f"CROSS JOIN LATERAL (SELECT {columns} OFFSET 0) AS h"


def nasty_text(h: str, row: str) -> str:
    """SQL for free text: every ninth value (by hash `h`) holds escapes and multi-byte text."""
    templates = ", ".join(_NASTY_TEMPLATES)
    return (
        f"CASE WHEN {h} % 9 = 0 THEN (ARRAY[{templates}])[1 + ({h} / 9 % 3)::int] "
        f"|| {row} || {_NASTY_TAIL} "
        f"|| CASE WHEN {h} / 27 % 4 = 0 THEN chr(31) || 'scan' ELSE '' END "
        f"ELSE 'checked by op ' || ({h} % 500) || ', ok' END"
    )


def _nullable(h: str, residue: int, modulus: int, expression: str) -> str:
    return f"CASE WHEN {h} % {modulus} = {residue} THEN NULL ELSE {expression} END"


REALISTIC_COLUMNS = """
    id bigint NOT NULL,
    site_code text NOT NULL,
    item_code text,
    quantity integer,
    station_no integer,
    recorded_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone,
    unit_cost numeric(12,4),
    weight_kg double precision,
    passed_qc boolean,
    remark text,
    description text,
    attributes jsonb,
    trace_id uuid
"""


# About 11 KB of ASCII words (hex digests), computed once per query: free text is a window of
# it. As bytea, a window is cut in O(1); as text, PostgreSQL would count characters up to it.
_CORPUS = (
    "(SELECT convert_to(string_agg(md5(i::text), ' '), 'UTF8') FROM generate_series(1, 340) AS i)"
)


def _window(start: str, length: str) -> str:
    return f"convert_from(substr({_CORPUS}, 1 + ({start})::int, ({length})::int), 'UTF8')"


def _uuid(seed: int, stream: int, column: int) -> str:
    """A uuid from two full 64-bit hashes (half the cost of md5)."""
    halves = (
        f"int8send(hashint8extended(g, {seed * 1_000_000 + stream * 1_000 + column + i}))"
        for i in (0, 500)
    )
    return f"encode({' || '.join(halves)}, 'hex')::uuid"


def realistic_select(seed: int, stream: int, rows: int) -> str:
    """SELECT ... FROM generate_series(1, rows) for the realistic table's 14 columns.

    Sizes: remark about 20-110 bytes; description about 80 bytes, one in fifty 1.3-6.6 KB
    (TOASTed); attributes a nested jsonb document of about 200 bytes. Each nullable column
    is NULL in about one row in 23 (remark in one in 27). About 450 bytes a row on disk.
    """
    names = ", ".join(f"'{name}'" for name in _NAMES)
    sites = "'FR-LYO','DE-MUC','IT-MIL','PL-WRO','US-CLE','JP-OSA','BR-SAO','IN-PUN'"
    phrases = (
        "'Inspection passed;','Rework after visual check;','Sample sent to lab;',"
        "'Line restarted after jam;','Tooling swapped;','Shift handover;'"
    )
    description = (
        f"CASE WHEN h7 % 23 = 4 THEN NULL "
        f"WHEN h7 % 50 = 0 THEN {_window('h7 % 4000', '1300 + h7 / 50 % 5300')} "
        f"ELSE (ARRAY[{phrases}])[1 + (h7 % 6)::int] || ' batch ' || g || ': ' "
        f"|| {_window('h7 % 10000', '40')} END"
    )
    attributes = f"""jsonb_build_object(
            'machine', 'M-' || lpad((h8 % 40)::text, 2, '0'),
            'readings', jsonb_build_array(round((h8 % 10000) / 100.0, 2),
                                          h9::float8 / 7919, (h9 % 50)::int),
            'operator', jsonb_build_object('id', 1000 + h9 % 300,
                                           'name', (ARRAY[{names}])[1 + (h9 % 6)::int]),
            'tags', CASE WHEN h9 % 5 = 0 THEN '[]'::jsonb
                         ELSE jsonb_build_array('t' || h9 % 9, 'rework') END,
            'ok', h8 % 10 <> 0,
            'comment', CASE WHEN h8 % 9 = 0
                            THEN {_NASTY_TEMPLATES[0]} || {_NASTY_TAIL} ELSE NULL END)"""
    item_code = "'SKU-' || lpad((h2 % 100000)::text, 5, '0') || chr(65 + (h2 / 100000 % 26)::int)"
    values = [
        "g",
        f"(ARRAY[{sites}])[1 + (h1 % 8)::int]",
        _nullable("h2", 0, 23, item_code),
        _nullable("h3", 1, 23, "(h3 % 5000)::int - 50"),
        _nullable("h4", 2, 23, "1 + (h4 % 64)::int"),
        "recorded_at",
        _nullable("h5", 3, 23, "recorded_at + make_interval(secs => h5 % 86400)"),
        _nullable("h11", 7, 23, "((h11 % 100000000) / 10000.0)::numeric(12,4)"),
        _nullable("h12", 8, 23, "h12::float8 / 37000"),
        _nullable("h13", 9, 23, "h13 % 10 <> 0"),
        f"CASE WHEN h6 % 27 = 1 THEN NULL ELSE {nasty_text('h6', 'g')} END",
        description,
        _nullable("h8", 5, 23, attributes),
        _nullable("h10", 6, 23, _uuid(seed, stream, 15)),
    ]
    return (
        "SELECT " + ",\n       ".join(values) + "\n"
        f"FROM generate_series(1::bigint, {int(rows)}) AS s(g)\n"
        f"{_hashes(seed, stream, 14)}\n"
        "CROSS JOIN LATERAL (SELECT timestamptz '2024-01-01 00:00:00+00' "
        "+ make_interval(secs => g * 7 + (h14 % 7000000) / 1000000.0) AS recorded_at) AS t"
    )


@dataclass(frozen=True)
class WideKind:
    """One kind of column of the wide table: a name prefix, a type and a value from hash h."""

    prefix: str
    type: str
    value: Callable[[str], str]


WIDE_KINDS = (
    WideKind("int", "integer", lambda h: f"({h} % 2000001)::int - 1000000"),
    WideKind("big", "bigint", lambda h: f"{h}::bigint * 4099 - 1000000000000"),
    WideKind("small", "smallint", lambda h: f"({h} % 65535 - 32767)::smallint"),
    WideKind("amount", "numeric(14,4)", lambda h: f"({h}::numeric / 10000 - 100000)"),
    WideKind("ratio", "double precision", lambda h: f"{h}::float8 / 977"),
    WideKind("temp", "real", lambda h: f"({h} % 1000000)::real / 7"),
    WideKind("flag", "boolean", lambda h: f"{h} % 2 = 0"),
    WideKind("code", "text", lambda h: f"'C' || to_hex({h} % 1048576)"),
    WideKind(
        "label",
        "varchar(40)",
        lambda h: (
            f"(ARRAY['alpha','beta','gamma','Ω-omega','ß-eszett','東-east'])"
            f"[1 + ({h} % 6)::int] || '-' || {h} % 1000"
        ),
    ),
    WideKind(
        "at",
        "timestamp with time zone",
        lambda h: (
            f"timestamptz '2023-01-01 00:00:00+00' "
            f"+ make_interval(secs => {h} % 63072000 + ({h} % 1000) / 1000.0)"
        ),
    ),
    WideKind("day", "date", lambda h: f"date '2015-01-01' + ({h} % 4000)::int"),
    WideKind(
        "doc",
        "jsonb",
        lambda h: f"jsonb_build_object('k', {h} % 1000, 'v', 'x' || {h} % 97, 'f', {h} % 3 = 0)",
    ),
    WideKind(
        "uid",
        "uuid",
        lambda h: (
            f"encode(int8send(hashint8extended(g, {h})) "
            f"|| int8send(hashint8extended({h}, 1)), 'hex')::uuid"
        ),
    ),
    WideKind("tags", "text[]", lambda h: f"ARRAY['t' || {h} % 10, 'u' || {h} % 7]"),
    WideKind("note", "text", lambda h: nasty_text(h, "g")),
)
WIDE_DATA_COLUMNS = 71  # plus the key: 72 columns


def wide_columns() -> list[tuple[str, WideKind]]:
    """(column name, kind) of the wide table's data columns, cycling through the kinds."""
    return [
        (f"{WIDE_KINDS[i % len(WIDE_KINDS)].prefix}_{i + 1:02d}", WIDE_KINDS[i % len(WIDE_KINDS)])
        for i in range(WIDE_DATA_COLUMNS)
    ]


def wide_definition() -> str:
    """The wide table's column list for CREATE TABLE: a bigint key and 71 nullable columns."""
    return ",\n".join(
        ["    id bigint NOT NULL", *(f"    {name} {kind.type}" for name, kind in wide_columns())]
    )


def wide_select(seed: int, stream: int, rows: int) -> str:
    """SELECT ... FROM generate_series(1, rows) for the wide table.

    Each column is NULL where bits 20 and up of its hash are 0 modulo 13 (about one row in
    13), so every column holds NULLs and they fall independently of the value's residue.
    """
    values = [
        f"CASE WHEN h{i} / 1048576 % 13 = 0 THEN NULL ELSE {kind.value(f'h{i}')} END"
        for i, (_, kind) in enumerate(wide_columns(), start=1)
    ]
    return (
        "SELECT g,\n       "
        + ",\n       ".join(values)
        + f"\nFROM generate_series(1::bigint, {int(rows)}) AS s(g)\n"
        + _hashes(seed, stream, WIDE_DATA_COLUMNS)
    )
