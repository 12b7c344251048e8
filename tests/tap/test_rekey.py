"""The fast read path's json_build_array rows, re-keyed in C, against row_to_json objects.

The tap asks the server for each row as a JSON array (cheaper for the server) and puts the
column names back (_rekey.c). That is only right if the result is byte for byte the object
row_to_json renders; these tests check it on every type the tap carries, and the re-keying
itself on hard JSON.
"""

from __future__ import annotations

import msgspec
import psycopg2
import psycopg2.extensions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tap_manufacturing import streams
from tap_manufacturing.client import connect
from tap_manufacturing.config import SourceSettings
from tap_manufacturing.discovery import describe_table
from tap_manufacturing.streams import ROW_ALIAS, quote_ident
from tap_manufacturing.types import select_expression
from testkit.c_modules import without_c_modules
from testkit.postgres import run_sql
from testkit.tap import TYPES_DDL

rekey = pytest.importorskip("tap_manufacturing._rekey", reason="no C compiler at install")

KEYS = (b'"a"', b'"b,c"', b'"d"', b'"\\u00e9\\"x"', b'"e"', b'"f"')


def test_arrays_get_their_keys_back_with_values_copied_exactly():
    row = (b'[1.50, "x, ]} \\" \\\\", null, {"k": [1, {"n": "]"}], "e": {}}, ["a", []], false]',)
    assert rekey.objects([row], KEYS) == [
        b'{"a":1.50,"b,c":"x, ]} \\" \\\\","d":null,'
        b'"\\u00e9\\"x":{"k": [1, {"n": "]"}], "e": {}},"e":["a", []],"f":false}'
    ]
    assert rekey.objects([], KEYS) == []


@pytest.mark.parametrize(
    "text",
    [b"[1, 2]", b"[1, 2, 3, 4, 5, 6, 7]", b"{}", b"[1, 2, 3, 4, 5, 6", b'[1, 2, 3, 4, 5, "6]'],
)
def test_a_row_that_is_not_an_array_of_one_value_per_key_is_an_error(text):
    with pytest.raises(ValueError, match="row 0 of the batch is not a JSON array of 6 values"):
        rekey.objects([(text,)], KEYS)


def test_the_tap_reads_arrays_when_it_can():
    assert streams._rekey is rekey


@pytest.mark.integration
def test_every_type_re_keyed_is_exactly_what_row_to_json_renders(pg_server, make_database):
    database = make_database("refills")
    run_sql(pg_server.dsn(database), TYPES_DDL)
    source = SourceSettings(
        name="refills",
        host=pg_server.host,
        port=pg_server.port,
        database=database,
        user=pg_server.user,
        table="refills_production",
    )
    with connect(source) as connection:
        table = describe_table(connection, source)
        names = [column.name for column in table.columns]
        selected = ", ".join(
            f"{select_expression(column.type, quote_ident(column.name))} AS "
            f"{quote_ident(column.name)}"
            for column in table.columns
        )
        inner = f"SELECT {selected} FROM public.refills_production ORDER BY id"
        values = ", ".join(f"{ROW_ALIAS}.{quote_ident(name)}" for name in names)
        with connection.cursor() as cursor:
            psycopg2.extensions.register_type(psycopg2.extensions.BYTES, cursor)
            cursor.execute(f"SELECT row_to_json({ROW_ALIAS})::text FROM ({inner}) {ROW_ALIAS}")
            objects = [row[0] for row in cursor.fetchall()]
            cursor.execute(f"SELECT json_build_array({values})::text FROM ({inner}) {ROW_ALIAS}")
            arrays = cursor.fetchall()
    keys = tuple(f'"{name}"'.encode() for name in names)
    assert len(objects) == 4
    assert rekey.objects(arrays, keys) == objects


@settings(max_examples=500, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=120),
    position=st.integers(min_value=0, max_value=120),
    byte=st.integers(min_value=0, max_value=255),
)
def test_damaged_rows_are_refused_or_re_keyed_without_reading_past_them(cut, position, byte):
    text = b'[1.50, "x, ]} \\" \\\\", null, {"k": [1, {"n": "]"}]}, ["a", []], false]'
    damaged = bytearray(text[: max(1, len(text) - cut % len(text))])
    damaged[position % len(damaged)] = byte
    try:
        (result,) = rekey.objects([(bytes(damaged),)], KEYS)
    except ValueError:
        return
    try:  # where the damaged row is still a JSON array of 6 values: the same values, keyed
        values = msgspec.json.decode(bytes(damaged))
    except (msgspec.DecodeError, UnicodeError):
        return  # the server never sends invalid JSON; only "no crash" matters here
    if isinstance(values, list) and len(values) == len(KEYS):
        keys = [msgspec.json.decode(key) for key in KEYS]
        assert msgspec.json.decode(result) == dict(zip(keys, values, strict=True))


@pytest.mark.integration
def test_without_its_c_module_the_tap_writes_the_same_records(
    pg_server, make_database, run_tap, tmp_path
):
    # Where no C compiler was at hand at install, the server renders row_to_json objects:
    # the same RECORD lines, and a log line that says so.
    database = make_database("refills")
    run_sql(pg_server.dsn(database), TYPES_DDL)
    source = {"host": pg_server.host, "port": pg_server.port, "user": pg_server.user}
    config = {"sources": {"refills": {**source, "database": database}}}

    def records(run) -> list[bytes]:
        lines = [line.encode() for line in run.stdout.splitlines()]
        return [line.split(b',"version"')[0] for line in lines if b'"RECORD"' in line]

    compiled = run_tap(config)
    python_only = run_tap(config, env=without_c_modules(tmp_path))
    assert "rows rendered by row_to_json" in python_only.stderr
    assert "rows rendered by row_to_json" not in compiled.stderr
    assert len(records(compiled)) == 4
    assert records(python_only) == records(compiled)


@pytest.mark.integration
def test_a_table_wider_than_json_build_array_takes_is_read_with_row_to_json(
    pg_server, make_database, run_tap
):
    # json_build_array takes at most 100 arguments: a wider selection is read as row_to_json
    # objects on the same fast path, and its records are just as complete.
    database = make_database("refills")
    names = [f"c{i}" for i in range(1, streams.MAX_ARRAY_COLUMNS + 5)]
    columns = ", ".join(f"{name} integer" for name in names)
    values = ", ".join(str(i) for i in range(1, len(names) + 1))
    run_sql(
        pg_server.dsn(database),
        f"CREATE TABLE refills_production (id integer PRIMARY KEY, {columns}, note text);"
        f"INSERT INTO refills_production VALUES (1, {values}, 'a \"b\"'), (2, {values}, NULL);",
    )
    source = {"host": pg_server.host, "port": pg_server.port, "user": pg_server.user}
    run = run_tap({"sources": {"refills": {**source, "database": database}}})
    records = [
        msgspec.json.decode(line)["record"]
        for line in run.stdout.splitlines()
        if '"type":"RECORD"' in line
    ]
    expected = {name: i for i, name in enumerate(names, start=1)}
    assert records == [
        {"id": 1, **expected, "note": 'a "b"'},
        {"id": 2, **expected, "note": None},
    ]
