"""Round trip of every PostgreSQL type the tap promises to carry exactly.

Each value is read back by PostgreSQL from what the tap wrote (the way the target reverses
the encoding: the column type's own input function, base64 for bytea, jsonb for json) and
compared with the source value's own text form.
"""

from __future__ import annotations

import decimal

import msgspec
import pytest

from testkit.postgres import run_sql
from testkit.tap import TYPES_DDL

pytestmark = pytest.mark.integration
EXACT = msgspec.json.Decoder(float_hook=decimal.Decimal)
EXACT_OUT = msgspec.json.Encoder(decimal_format="number")


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
