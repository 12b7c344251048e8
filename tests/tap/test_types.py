"""Round trip of every PostgreSQL type the tap promises to carry exactly.

Each value is read back by PostgreSQL from what the tap wrote (the way the target reverses
the encoding: the column type's own input function, base64 for bytea, jsonb for json) and
compared with the source value's own text form.
"""

from __future__ import annotations

import decimal

import msgspec
import pytest
from tap_helpers import run_sql

pytestmark = pytest.mark.integration
EXACT = msgspec.json.Decoder(float_hook=decimal.Decimal)
EXACT_OUT = msgspec.json.Encoder(decimal_format="number")

TYPES_DDL = """
CREATE TYPE mood AS ENUM ('ok', 'needs check', 'scrap');
CREATE DOMAIN positive_mm AS numeric(8,3) CHECK (VALUE > 0);
CREATE TYPE dimension AS (width numeric, label text);
CREATE TABLE refills_production (
    id integer PRIMARY KEY,
    n_exact numeric(10,4),
    n_free numeric,
    f4 real,
    f8 double precision,
    ts_tz timestamptz,
    ts timestamp,
    d date,
    t time,
    t_tz timetz,
    iv interval,
    u uuid,
    ip inet,
    net cidr,
    mac macaddr,
    bits bit(4),
    rng int4range,
    b bytea,
    j json,
    jb jsonb,
    ints integer[],
    texts text[],
    m mood,
    dm positive_mm,
    comp dimension,
    cash money,
    ok boolean,
    code varchar(5),
    fixed char(3),
    big bigint,
    small smallint
);
INSERT INTO refills_production VALUES
(1, 12.3400, 123456789012345678901234567890.123456789, 0.1, 0.1,
 '2024-01-02 03:04:05.123456+02', '2024-01-02 03:04:05.123456', '2024-01-02', '03:04:05.5',
 '03:04:05+02', '1 year 2 mons 3 days 04:05:06.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
 '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', B'1010', '[1,5)', '\\x00ff10',
 '{"b": 1, "a": [1, 2.50]}', '{"k": "v\\"q", "u": "é€"}', '{{1,2},{3,4}}',
 '{"ink", NULL, "tip \\"x\\""}', 'needs check', 2.5, ROW(1.50, 'w'), 1234.56, true, 'ab',
 'x', 9223372036854775807, -32768),
(2, 'NaN', 'Infinity', 'Infinity', '-Infinity', 'infinity', '-infinity', '4713-01-01 BC',
 '24:00:00', '00:00:00-14:59', '-3 days -00:00:00.000001', '00000000-0000-0000-0000-000000000000',
 '::1', '2001:db8::/32', '00:00:00:00:00:00', B'0000', 'empty', '\\x',
 '[]', '[]', '{}', '{}', 'ok', 0.001, ROW(NULL, NULL), -0.01, false, '', '   ',
 -9223372036854775808, 0),
(3, -0.0001, '-Infinity', 'NaN', 'NaN', '12345-06-07 08:09:10.000001+00',
 '0044-03-15 12:00:00 BC', '12345-01-01', '23:59:59.999999', '12:00:00+14', '0 seconds',
 NULL, NULL, NULL, NULL, NULL, '(,3]', '\\x0a0d00', '"text with \\n newline"',
 '{"nested": {"deep": [true, false, null]}, "num": 1e-7}', '{{NULL,2},{3,NULL}}',
 '{"a,b", "{braces}"}', 'scrap', 99999.999, NULL, NULL, NULL, 'abcde', 'abc', NULL, NULL),
(4, NULL, NULL, NULL, 1.5e300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL);
"""

# How PostgreSQL reads each value back from the record, per column: the target's rule.
READ_BACK = {
    "b": "decode(rec->>'b', 'base64')",
    # A JSON null and SQL NULL both arrive as null; like the target, read null as NULL.
    "j": "NULLIF(rec->'j', 'null')",
    "jb": "NULLIF(rec->'jb', 'null')",
    "comp": "CASE WHEN rec->'comp' = 'null' THEN NULL "
    "ELSE jsonb_populate_record(NULL::dimension, rec->'comp') END",
    "ints": "(SELECT CASE WHEN rec->'ints' = 'null' THEN NULL ELSE "
    "translate((rec->'ints')::text, '[]', '{}')::integer[] END)",
    "texts": "(SELECT CASE WHEN rec->'texts' = 'null' THEN NULL ELSE "
    "ARRAY(SELECT jsonb_array_elements_text(rec->'texts')) END)",
}
SOURCE_SIDE = {"j": "j::jsonb"}


@pytest.fixture
def types_database(pg_server, make_database):
    name = make_database("refills")
    run_sql(pg_server.dsn(name), TYPES_DDL)
    return name


def _records(run) -> list[tuple[dict, bytes]]:
    """Records decoded with exact numbers, plus the record re-encoded as JSON."""
    out = []
    for line in run.stdout.splitlines():
        message = EXACT.decode(line)
        if message["type"] == "RECORD":
            record = message["record"]
            out.append((record, EXACT_OUT.encode(record)))
    return out


@pytest.mark.parametrize("path", ["fast", "sdk"])
def test_every_type_round_trips(pg_server, types_database, run_tap, path):
    config = {
        "sources": {
            "refills": {
                "host": pg_server.host,
                "port": pg_server.port,
                "user": pg_server.user,
                "database": types_database,
            }
        }
    }
    if path == "sdk":  # a stream map forces the SDK's per-record path
        config["stream_maps"] = {"refills": {"mapped": "'yes'"}}
    run = run_tap(config)
    records = _records(run)
    assert len(records) == 4
    import psycopg2

    connection = psycopg2.connect(pg_server.dsn(types_database))
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'refills_production'::regclass AND attnum > 0 "
                "ORDER BY attnum"
            )
            columns = cursor.fetchall()
            for record, encoded in records:
                if path == "sdk":
                    assert record.pop("mapped") == "yes"
                assert set(record) == {name for name, _ in columns}
                for name, sql_type in columns:
                    read_back = READ_BACK.get(name, f"(rec->>'{name}')::{sql_type}")
                    source = SOURCE_SIDE.get(name, name)
                    cursor.execute(
                        f"SELECT ({source})::text, ({read_back})::text "
                        f"FROM refills_production, (SELECT %s::jsonb AS rec) AS r "
                        f"WHERE id = %s",
                        (encoded.decode(), record["id"]),
                    )
                    expected, actual = cursor.fetchone()
                    assert actual == expected, (record["id"], name, record[name])
    finally:
        connection.close()


def test_encodings_follow_the_contract(pg_server, types_database, run_tap):
    """Spot checks of the JSON forms documented in docs/value-encoding.md."""
    source = {"host": pg_server.host, "port": pg_server.port, "user": pg_server.user}
    config = {"sources": {"refills": {**source, "database": types_database}}}
    run = run_tap(config)
    first, second, third, _ = run.records("refills")
    line = next(x for x in run.stdout.splitlines() if '"id":1,' in x)
    assert '"n_exact":12.3400' in line  # digits and scale as written by PostgreSQL
    assert first["ts_tz"] == "2024-01-02T01:04:05.123456+00:00"
    assert first["iv"] == "P1Y2M3DT4H5M6.5S"
    assert first["b"] == "AP8Q"
    assert first["ints"] == [[1, 2], [3, 4]]
    assert first["m"] == "needs check"
    assert first["comp"] == {"width": 1.5, "label": "w"}
    assert first["cash"] == 1234.56
    assert second["n_exact"] == "NaN"
    assert second["f8"] == "-Infinity"
    assert second["ts_tz"] == "infinity"
    assert second["d"] == "4713-01-01 BC"
    assert third["d"] == "12345-01-01"
    assert third["f4"] == "NaN"
    schema = run.of_type("SCHEMA", "refills")[0]["schema"]["properties"]
    assert schema["dm"]["x-sql-datatype"] == "numeric(8,3)"
    assert schema["m"]["x-sql-datatype"] == "text"
    assert schema["m"]["enum"] == ["ok", "needs check", "scrap", None]
    assert schema["comp"]["x-sql-datatype"] == "jsonb"
    assert schema["b"]["contentEncoding"] == "base64"
    assert schema["code"]["maxLength"] == 5
