"""The type zoo: a source table with every built-in type a production table may hold.

Each column comes with the values that break careless pipelines (extremes, NaN and
infinities, BC and 5-digit years, padding, multi-byte text, NULL elements, the JSON null, ...),
the type the warehouse must give it, and how its value reads in the warehouse. Row 1 is SQL
NULL in every column; the other rows cycle through each column's values, starting at a
per-source offset so that the three sources hold different tables.

`compare` checks one source table against its warehouse copy column by column: each value's
text form (`::text`, TimeZone UTC, on both sides) and each column's `format_type`, and
`mismatch_report` prints what differs as a table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
import psycopg2.extensions

ROWS = 30  # row 1 all NULL, rows 2..ROWS cycle through the values

USER_TYPES = """
CREATE TYPE mood AS ENUM ('ok', 'needs check', 'scrap', 'ünïcode ☃');
CREATE DOMAIN positive_mm AS numeric(8,3) CHECK (VALUE > 0);
CREATE DOMAIN lot_label AS varchar(20);
CREATE TYPE dimension AS (width numeric, label text, taken timestamptz, raw bytea, ok boolean);
"""

_JSON_VALUES = [
    "null", '{"b": 1,  "a": 2, "a": 3}', '\n\t[1, 2.50 , "x"]  ',
    '{"k": "\\u00e9\\ud83d\\ude00 é😀", "q": "say \\"hi\\"\\\\"}',
    '{"a": {"b": [1, {"c": null}, []]}, "e": {}}', "{}", "[]", '""', '"null"', "1.50", "-0",
    "1e400", "12345678901234567890.000000000001", "true", "false",
]  # fmt: skip


@dataclass(frozen=True)
class ZooColumn:
    """One column: its source type, its values (type input text; None is SQL NULL), the type
    the warehouse must give it, and how to read a warehouse-comparable text in the source."""

    name: str
    source_type: str
    values: tuple[str | None, ...]
    warehouse_type: str | None = None  # None: the source type itself (format_type text)
    source_text: str = "{c}::text"  # SQL whose text the warehouse's `{c}::text` must equal
    min_server: int = 0  # server_version_num from which PostgreSQL has these values


def _col(name: str, sql_type: str, *values: str | None, **extra: str | int) -> ZooColumn:
    return ZooColumn(name, sql_type, tuple(values), **extra)


COLUMNS: tuple[ZooColumn, ...] = (
    # integers and exact numbers
    _col("c_smallint", "smallint", "-32768", "32767", "0"),
    _col("c_integer", "integer", "-2147483648", "2147483647", "0"),
    _col("c_bigint", "bigint", "-9223372036854775808", "9223372036854775807", "0"),
    _col("c_oid", "oid", "0", "4294967295"),
    _col("c_numeric", "numeric", "NaN", "Infinity", "-Infinity", "0",
         "123456789012345678901234567890.123456789012345678901234567890",
         "-0.000000000000000000000000000001", "1" + "0" * 300, "12.3400"),
    _col("c_numeric_ps", "numeric(12,4)", "99999999.9999", "-99999999.9999", "0.0000",
         "NaN", "1.5000"),
    _col("c_numeric_neg_scale", "numeric(5,-2)", "9999900", "-100", "0"),
    # floats
    _col("c_real", "real", "NaN", "Infinity", "-Infinity", "3.4028235e+38", "-3.4028235e+38",
         "1e-45", "-0", "0.1"),
    _col("c_double", "double precision", "NaN", "Infinity", "-Infinity",
         "1.7976931348623157e+308", "5e-324", "-0", "0.1"),
    _col("c_money", "money", "-92233720368547758.08", "92233720368547758.07", "0", "12.34"),
    # text
    _col("c_text", "text", "", "Grüße 漢字 😀", "tab\there\nnew line\\back\"quote'", "NULL",
         "\\N", "  spaces  "),
    _col("c_varchar", "character varying(10)", "ten chars!", "漢字漢字漢字漢字漢字", ""),
    _col("c_char", "character(5)", "ab", "", "ü", "abcde"),
    _col("c_char1", '"char"', "a", "Z"),
    _col("c_name", "name", "n" * 63, "Grüße"),
    # binary and boolean
    _col("c_bytea", "bytea", "\\x", "\\x" + bytes(range(256)).hex(), "\\x00"),
    _col("c_bool", "boolean", "true", "false"),
    # date and time
    _col("c_date", "date", "infinity", "-infinity", "4713-01-01 BC", "5874897-12-31",
         "0001-01-01", "12345-06-07", "2024-02-29"),
    _col("c_time", "time without time zone", "00:00:00", "24:00:00", "23:59:59.999999"),
    _col("c_time3", "time(3) without time zone", "12:34:56.789", "00:00:00"),
    _col("c_timetz", "time with time zone", "00:00:00+15:59", "24:00:00-15:59",
         "12:00:00.5+05:30"),
    _col("c_timestamp", "timestamp without time zone", "infinity", "-infinity",
         "4713-01-01 00:00:00 BC", "294276-12-31 23:59:59.999999", "12345-06-07 08:09:10",
         "2024-01-02 03:04:05.123456"),
    _col("c_timestamp0", "timestamp(0) without time zone", "2024-01-02 03:04:05",
         "0044-03-15 12:00:00 BC"),
    _col("c_timestamptz", "timestamp with time zone", "infinity", "-infinity",
         "4713-01-01 00:00:00+00 BC", "294276-12-31 23:59:59.999999+00",
         "12345-06-07 08:09:10+02", "2024-01-02 03:04:05.123456-14:59"),
    _col("c_timestamptz3", "timestamp(3) with time zone", "2024-01-02 03:04:05.123+01"),
    _col("c_interval", "interval", "178000000 years", "-178000000 years",
         "1 year 2 mons 3 days 04:05:06.789012", "-3 days -00:00:00.000001", "00:00:00",
         "2147483647 days 2562047788:00:54.775807", "1 mon -1 days"),
    _col("c_interval_infinite", "interval", "infinity", "-infinity", "1 day",
         min_server=170000),  # infinite intervals are new in PostgreSQL 17
    _col("c_interval_ds", "interval day to second(3)", "3 days 04:05:06.789", "-00:00:00.001"),
    _col("c_interval_ym", "interval year to month", "1 year 2 mons", "-1 years"),
    # identifiers and network
    _col("c_uuid", "uuid", "00000000-0000-0000-0000-000000000000",
         "ffffffff-ffff-ffff-ffff-ffffffffffff", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    _col("c_inet", "inet", "192.168.0.1/24", "::ffff:1.2.3.4", "2001:db8::1", "0.0.0.0/0"),
    _col("c_cidr", "cidr", "10.0.0.0/8", "2001:db8::/32", "255.255.255.255/32"),
    _col("c_macaddr", "macaddr", "08:00:2b:01:02:03", "ff:ff:ff:ff:ff:ff"),
    _col("c_macaddr8", "macaddr8", "08:00:2b:01:02:03:04:05", "00:00:00:00:00:00:00:00"),
    # bit strings
    _col("c_bit", "bit(8)", "10100101", "00000000"),
    _col("c_varbit", "bit varying(16)", "", "1", "1111000011110000"),
    # documents and text search
    _col("c_json", "json", *_JSON_VALUES, '"\\u0000 is an escape in json text"'),
    _col("c_jsonb", "jsonb", *_JSON_VALUES),
    _col("c_xml", "xml", '<a b="1">x &amp; y</a>', "plain content", "<p>é</p><p/>"),
    _col("c_tsvector", "tsvector", "a fat cat:1A sat:2B,3 ünï", ""),
    _col("c_tsquery", "tsquery", "fat & (rat | cat)", "!a <-> b:*"),
    _col("c_jsonpath", "jsonpath", "$.a[*] ? (@ > 1)", "strict $.\"key\""),
    _col("c_pg_lsn", "pg_lsn", "0/0", "FFFFFFFF/FFFFFFFF", "16/B374D848"),
    # ranges and multiranges
    _col("c_int4range", "int4range", "empty", "(,)", "[1,5)", "[-2147483648,2147483647)"),
    _col("c_int8range", "int8range", "[-9223372036854775808,9223372036854775807)", "(,0)"),
    _col("c_numrange", "numrange", "[1.50,NaN]", "(-Infinity,Infinity)", "empty"),
    _col("c_tsrange", "tsrange", "[-infinity,infinity]", "[2024-01-01,2024-01-02)"),
    _col("c_tstzrange", "tstzrange", '["4713-01-01 00:00:00+00 BC",infinity)',
         "[2024-01-01 00:00+02,)"),
    _col("c_daterange", "daterange", "[-infinity,infinity)", "[2024-01-01,2024-02-01)", "empty"),
    _col("c_int4multirange", "int4multirange", "{}", "{[1,3), [5,7)}"),
    _col("c_int8multirange", "int8multirange", "{(,0), [10,)}"),
    _col("c_nummultirange", "nummultirange", "{[1.5,2.5]}", "{}"),
    _col("c_tsmultirange", "tsmultirange", "{[2024-01-01,2024-01-02), [2025-01-01,)}"),
    _col("c_tstzmultirange", "tstzmultirange", "{[2024-01-01 00:00+02,infinity)}"),
    _col("c_datemultirange", "datemultirange", "{[2024-01-01,2024-01-05), [-infinity,2000-01-01)}"),
    # geometry
    _col("c_point", "point", "(1.5,-2)", "(NaN,Infinity)"),
    _col("c_line", "line", "{1,-1,0}"),
    _col("c_lseg", "lseg", "[(0,0),(1,1)]"),
    _col("c_box", "box", "(1,1),(0,0)"),
    _col("c_path", "path", "[(0,0),(1,1),(2,0)]", "((0,0),(1,1))"),
    _col("c_polygon", "polygon", "((0,0),(1,1),(1,0))"),
    _col("c_circle", "circle", "<(0,0),1.5>"),
    # arrays, 1-D and 2-D, with NULL elements
    _col("c_int_arr", "integer[]", "{}", "{1,NULL,3}", "{{1,2},{NULL,4}}", "{NULL}"),
    _col("c_text_arr", "text[]",
         '{"a,b","NULL",NULL,"","quote\\"","back\\\\slash","{}"," pad "}',
         '{{"a","b"},{"c",NULL}}', "{}", '{"Grüße 漢字"}'),
    _col("c_numeric_arr", "numeric[]", "{1.50,NaN,NULL,-Infinity,Infinity}", "{{1,2},{3,4}}"),
    _col("c_float_arr", "double precision[]", "{NaN,Infinity,-0,1.5e300,NULL}"),
    _col("c_real_arr", "real[]", "{0.1,-Infinity}"),
    _col("c_bool_arr", "boolean[]", "{t,f,NULL}"),
    _col("c_ts_arr", "timestamp with time zone[]",
         '{infinity,"2024-01-02 03:04:05+02",NULL,"0044-03-15 12:00:00+00 BC"}'),
    _col("c_date_arr", "date[]", "{2024-02-29,infinity,12345-01-01}"),
    _col("c_interval_arr", "interval[]", '{"1 day","-00:00:00.000001",NULL}'),
    _col("c_uuid_arr", "uuid[]", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}"),
    _col("c_bytea_arr", "bytea[]", '{"\\\\x00ff",NULL,"\\\\x"}'),
    _col("c_varchar_arr", "character varying(5)[]", '{"abcde","",NULL}'),
    _col("c_char_arr", "character(3)[]", '{"a","",NULL}'),
    _col("c_inet_arr", "inet[]", "{10.0.0.1/8,::1}"),
    _col("c_money_arr", "money[]", "{1.50,-2.00,NULL}"),
    _col("c_json_arr", "json[]", '{"{\\"a\\":  1}","null",NULL,"\\"\\""}'),
    _col("c_jsonb_arr", "jsonb[]", '{{"{\\"b\\": [1, 2]}",NULL},{"null","{}"}}', "{}"),
    _col("c_range_arr", "int4range[]", '{"[1,5)",empty,NULL}'),
    # types of this database only: their documented warehouse types
    _col("c_enum", "mood", "ok", "needs check", "ünïcode ☃", warehouse_type="text"),
    _col("c_enum_arr", "mood[]", '{ok,NULL,"needs check"}', warehouse_type="text[]"),
    _col("c_domain", "positive_mm", "0.001", "99999.999", warehouse_type="numeric(8,3)"),
    _col("c_domain_text", "lot_label", "L-0001", "Lös 漢字",
         warehouse_type="character varying(20)"),
    _col("c_composite", "dimension", "(1.50,w,2024-01-02 03:04:05+02,\\\\x00ff,t)", "(,,,,)",
         '(NaN,"a, \\"b\\"",infinity,,f)', warehouse_type="jsonb",
         source_text="to_jsonb({c})::text"),
    _col("c_composite_arr", "dimension[]", '{"(1,x,,,t)",NULL}', warehouse_type="jsonb[]",
         source_text="CASE WHEN {c} IS NULL THEN NULL ELSE "
         "ARRAY(SELECT to_jsonb({c}[i]) FROM generate_subscripts({c}, 1) i ORDER BY i)::text END"),
    # names that are reserved words, mixed case, spaces and dots
    _col("order", "integer", "1", "-1"),
    _col("user", "text", "ada", "bob"),
    _col("LotCode", "text", "L-1", "l-1"),
    _col("batch no. 7", "text", "x"),
)  # fmt: skip


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str | None, sql_type: str) -> str:
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + f"'::{sql_type}"


def columns_supported(dsn: str) -> tuple[ZooColumn, ...]:
    """The zoo's columns this server can hold: xml needs a server built with libxml (the
    embedded server is not), infinite intervals PostgreSQL 17."""
    connection = psycopg2.connect(dsn)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version_num")
            version = int(cursor.fetchone()[0])
            try:
                cursor.execute("SELECT '<a/>'::xml")
                xml = True
            except psycopg2.errors.FeatureNotSupported:
                xml = False
    finally:
        connection.close()
    return tuple(
        column
        for column in COLUMNS
        if version >= column.min_server and (xml or column.source_type != "xml")
    )


def create_zoo(dsn: str, table: str, offset: int, columns: Sequence[ZooColumn]) -> None:
    """The zoo table with its user types, row 1 all NULL, rows 2.. cycling from `offset`."""
    ddl = ", ".join(f"{quote_ident(c.name)} {c.source_type}" for c in columns)
    rows = ["(1, '2024-01-01 00:00:00+00', " + ", ".join("NULL" for _ in columns) + ")"]
    for row in range(2, ROWS + 1):
        values = [_literal(c.values[(row + offset) % len(c.values)], c.source_type)
                  for c in columns]  # fmt: skip
        rows.append(f"({row}, '2024-01-01 00:00:00+00', {', '.join(values)})")
    names = ", ".join(quote_ident(c.name) for c in columns)
    connection = psycopg2.connect(dsn)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(USER_TYPES)
            cursor.execute(
                f"CREATE TABLE {table} (id integer PRIMARY KEY, updated_at timestamptz NOT NULL, "
                f"{ddl})"
            )
            cursor.execute(
                f"INSERT INTO {table} (id, updated_at, {names}) VALUES {', '.join(rows)}"
            )
    finally:
        connection.close()


@dataclass(frozen=True)
class Mismatch:
    """What differs in one column."""

    column: str
    source_type: str
    warehouse_type: str
    expected_type: str
    rows: int  # rows whose value differs
    first: str  # the first differing value, source versus warehouse


def _reader(dsn: str) -> tuple[psycopg2.extensions.connection, Callable[[str], list[tuple]]]:
    """A connection in UTC and a function that returns a query's rows on it."""
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SET TimeZone = 'UTC'")

    def read(sql: str) -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()

    return connection, read


def _types(read: Callable[[str], list[tuple]], table: str) -> dict[str, str]:
    return dict(
        read(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            f"WHERE attrelid = to_regclass('{table}') AND attnum > 0 AND NOT attisdropped"
        )
    )


def _differing(source: dict, landed: dict) -> tuple[int, str]:
    """How many rows differ, and the first of them (source -> warehouse)."""
    missing = "(no row)"
    ids = sorted(i for i in source.keys() | landed.keys()
                 if source.get(i, missing) != landed.get(i, missing))  # fmt: skip
    if not ids:
        return 0, ""
    return len(
        ids
    ), f"id {ids[0]}: {source.get(ids[0], missing)!r} -> {landed.get(ids[0], missing)!r}"


def compare(
    source_dsn: str,
    source_table: str,
    warehouse_dsn: str,
    warehouse_table: str,
    columns: Sequence[ZooColumn],
) -> list[Mismatch]:
    """Every column whose warehouse type or any value differs from what the source holds."""
    source_connection, read_source = _reader(source_dsn)
    warehouse_connection, read_warehouse = _reader(warehouse_dsn)
    try:
        source_types = _types(read_source, source_table)
        warehouse_types = _types(read_warehouse, warehouse_table)
        mismatches = []
        for column in columns:
            quoted = quote_ident(column.name)
            expression = column.source_text.format(c=quoted)
            source = dict(read_source(f"SELECT id, {expression} FROM {source_table}"))
            landed: dict = {}
            if column.name in warehouse_types:
                landed = dict(read_warehouse(f"SELECT id, {quoted}::text FROM {warehouse_table}"))
            rows, first = _differing(source, landed)
            landed_type = warehouse_types.get(column.name, "(missing)")
            expected_type = column.warehouse_type or source_types[column.name]
            if rows or landed_type != expected_type:
                mismatches.append(Mismatch(column.name, source_types[column.name], landed_type,
                                           expected_type, rows, first))  # fmt: skip
        return mismatches
    finally:
        source_connection.close()
        warehouse_connection.close()


def mismatch_report(title: str, mismatches: Sequence[Mismatch]) -> str:
    """A table of mismatches, one line per column."""
    header = ("column", "source type", "warehouse type", "expected type", "rows", "first")
    lines = [header] + [
        (m.column, m.source_type, m.warehouse_type, m.expected_type, str(m.rows), m.first[:160])
        for m in mismatches
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
        + "  " + line[-1]
        for line in lines
    ]  # fmt: skip
    return f"{title}: {len(mismatches)} column(s) differ\n" + "\n".join(text)
