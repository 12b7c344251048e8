"""Data-driven tests: Singer input piped into the real executable, assertions in PostgreSQL."""

# ruff: noqa: E501 - long expected-value literals read better on one line
from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from testkit.c_modules import without_c_modules
from testkit.singer import record_message, schema_message, singer

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.integration


def orders(*rows: tuple[int, str], state: int | None = None) -> str:
    messages = [schema_message("orders", {"id": {"type": "integer"}, "name": {"type": "string"}},
                               ["id"])]  # fmt: skip
    messages += [record_message("orders", {"id": i, "name": n}) for i, n in rows]
    if state is not None:
        messages.append({"type": "STATE", "value": {"orders": state}})
    return singer(*messages)


def test_two_runs_replace_and_same_input_gives_same_table(warehouse, run_target):
    first = orders((1, "a"), (2, "b"), (3, "c"), state=1)
    assert run_target(first).returncode == 0
    assert run_target(first).returncode == 0
    assert warehouse.table("orders") == [(1, "a"), (2, "b"), (3, "c")]
    second = run_target(orders((2, "B"), (4, "d"), state=2))
    assert second.returncode == 0, second.stderr
    assert second.states == [{"orders": 2}]
    assert warehouse.table("orders") == [(2, "B"), (4, "d")]
    assert [h[:3] for h in warehouse.history()] == [
        ("orders", "replaced", 3), ("orders", "replaced", 3), ("orders", "replaced", 2),
    ]  # fmt: skip
    assert "orders" in second.stderr
    assert "replaced" in second.stderr


def test_schema_and_zero_records_replaces_with_an_empty_table(warehouse, run_target):
    assert run_target(orders((1, "a"))).returncode == 0
    assert run_target(orders()).returncode == 0
    assert warehouse.table("orders") == []


def test_views_grants_and_comments_survive_a_replace(warehouse, run_target):
    assert run_target(orders((1, "a"))).returncode == 0
    warehouse.execute(
        "CREATE VIEW raw.orders_v AS SELECT id, upper(name) AS name FROM raw.orders;"
        "DROP ROLE IF EXISTS twr_reader; CREATE ROLE twr_reader;"
        "GRANT USAGE ON SCHEMA raw TO twr_reader; GRANT SELECT ON raw.orders TO twr_reader;"
        "COMMENT ON TABLE raw.orders IS 'kept';"
    )
    oid = warehouse.query("SELECT 'raw.orders'::regclass::oid")
    try:
        assert run_target(orders((5, "e"), (6, "f"))).returncode == 0
        assert warehouse.query("SELECT * FROM raw.orders_v ORDER BY id") == [(5, "E"), (6, "F")]
        assert warehouse.query(
            "SELECT has_table_privilege('twr_reader', 'raw.orders', 'SELECT')"
        ) == [(True,)]
        assert warehouse.query("SELECT obj_description('raw.orders'::regclass)") == [("kept",)]
        assert warehouse.query("SELECT 'raw.orders'::regclass::oid") == oid
    finally:
        warehouse.execute("DROP OWNED BY twr_reader; DROP ROLE twr_reader")


def test_other_taps_output_loads(warehouse, run_target):
    run = run_target(DATA / "other_tap_orders.singer")
    assert run.returncode == 0, run.stderr
    assert run.states == [{"bookmarks": {"public-orders": {"replication_key_value": 2}}}]
    # Names land as the tap spells them: dashes, spaces and reserved words included.
    assert warehouse.columns("public-orders") == [
        ("order_id", "bigint"), ("Customer Name", "text"), ("total", "numeric"),
        ("placed_at", "timestamp with time zone"), ("ship_date", "date"), ("paid", "boolean"),
        ("lines", "jsonb"), ("select", "text"),
    ]  # fmt: skip
    assert warehouse.table("public-orders") == [
        (1, "Ada", Decimal("19.90"), dt.datetime(2024, 3, 1, 9, tzinfo=dt.timezone.utc),
         dt.date(2024, 3, 2), True, [{"sku": "P-1", "qty": 2}], "x"),
        (2, None, Decimal("5"), dt.datetime(2024, 3, 1, 23, 30, tzinfo=dt.timezone.utc),
         None, False, [], None),
    ]  # fmt: skip
    assert warehouse.table("public-customers") == [("c1", "Ada")]


def test_values_round_trip_exactly_into_hinted_types(warehouse, run_target):
    props = {
        "id": {"type": "integer", "x-sql-datatype": "integer"},
        "n": {"type": ["number", "string", "null"], "x-sql-datatype": "numeric(10,4)"},
        "f": {"type": ["number", "string", "null"], "x-sql-datatype": "double precision"},
        "ts": {"type": ["string", "null"], "format": "date-time",
               "x-sql-datatype": "timestamp with time zone"},
        "lts": {"type": ["string", "null"], "x-sql-datatype": "timestamp without time zone"},
        "d": {"type": ["string", "null"], "format": "date", "x-sql-datatype": "date"},
        "b": {"type": ["string", "null"], "contentEncoding": "base64", "x-sql-datatype": "bytea"},
        "iv": {"type": ["string", "null"], "x-sql-datatype": "interval"},
        "j": {"x-sql-datatype": "json"},
        "jb": {"x-sql-datatype": "jsonb"},
        "arr": {"type": ["array", "null"], "x-sql-datatype": "integer[]"},
        "arr2": {"type": ["array", "null"], "x-sql-datatype": "text[]"},
        "u": {"type": ["string", "null"], "x-sql-datatype": "uuid"},
        "m": {"type": ["number", "null"], "x-sql-datatype": "money"},
        "vc": {"type": ["string", "null"], "x-sql-datatype": "character varying(5)"},
        "bogus": {"type": ["string", "null"], "x-sql-datatype": "no_such_type(3)"},
    }  # fmt: skip
    uid = str(uuid.uuid4())
    rows = [
        {"id": 1, "n": 12.3400, "f": "NaN", "ts": "2024-01-02T01:04:05.123456+00:00",
         "lts": "2024-01-02T03:04:05.5", "d": "0044-03-15 BC", "b": "AAEC/w==",
         "iv": "P1Y2M3DT4H5M6.5S", "j": {"a": [1, "x"]}, "jb": [1, {"b": None}],
         "arr": [[1, 2], [3, 4]], "arr2": ["a,b", "c\"d", None, "e\\f"], "u": uid, "m": 12.34,
         "vc": "abcde", "bogus": "kept as text"},
        {"id": 2, "n": -1.5, "f": "-Infinity", "ts": "infinity", "lts": "-infinity",
         "d": "infinity", "b": None, "iv": "PT-0.000001S", "j": None, "jb": "str",
         "arr": None, "arr2": [], "u": None, "m": None, "vc": None, "bogus": None},
        {"id": 3, "n": "NaN", "f": 1e-7, "ts": "12345-01-01T00:00:00+00:00", "lts": None,
         "d": "2024-02-29", "b": "", "iv": None, "j": 1.5, "jb": None, "arr": [],
         "arr2": None, "u": None, "m": 0, "vc": "", "bogus": ""},
    ]  # fmt: skip
    run = run_target(singer(schema_message("typed", props, ["id"]),
                            *(record_message("typed", r) for r in rows)))  # fmt: skip
    assert run.returncode == 0, run.stderr
    types = dict(warehouse.columns("typed"))
    assert types["n"] == "numeric(10,4)"
    assert types["vc"] == "character varying(5)"
    assert types["bogus"] == "text"  # unknown hint: JSON Schema decides
    text = warehouse.query(
        "SELECT id, n::text, f::text, ts::text, lts::text, d::text, encode(b, 'hex'), iv::text,"
        " j::text, jb::text, arr::text, arr2::text, u::text, m::numeric::text, vc, bogus "
        "FROM raw.typed ORDER BY id"
    )
    assert text[0] == (1, "12.3400", "NaN", "2024-01-02 01:04:05.123456+00",
                       "2024-01-02 03:04:05.5", "0044-03-15 BC", "000102ff",
                       "1 year 2 mons 3 days 04:05:06.5", '{"a": [1, "x"]}', '[1, {"b": null}]',
                       "{{1,2},{3,4}}", '{"a,b","c\\"d",NULL,"e\\\\f"}', uid, "12.34", "abcde",
                       "kept as text")  # fmt: skip
    assert text[1] == (2, "-1.5000", "-Infinity", "infinity", "-infinity", "infinity", None,
                       "-00:00:00.000001", None, '"str"', None, "{}", None, None, None, None)  # fmt: skip
    assert text[2][:4] == (3, "NaN", "1e-07", "12345-01-01 00:00:00+00")
    assert text[2][6] == ""
    assert text[2][8] == "1.5"
    assert text[2][9] is None
    assert text[2][10] == "{}"


def test_upsert_last_wins_and_schema_growth_adds_a_column(warehouse, run_target):
    cfg = {"load_method": "upsert"}
    assert run_target(orders((1, "a"), (2, "b")), config=cfg).returncode == 0
    grown = singer(
        schema_message("orders", {"id": {"type": "integer"}, "name": {"type": "string"},
                                  "qty": {"type": ["integer", "null"]}}, ["id"]),
        record_message("orders", {"id": 2, "name": "B1", "qty": 1}),
        record_message("orders", {"id": 3, "name": "c", "qty": 3}),
        record_message("orders", {"id": 2, "name": "B2", "qty": 2}),
        {"type": "STATE", "value": {"orders": 9}},
    )  # fmt: skip
    run = run_target(grown, config=cfg)
    assert run.returncode == 0, run.stderr
    assert run.states == [{"orders": 9}]
    assert warehouse.table("orders") == [(1, "a", None), (2, "B2", 2), (3, "c", 3)]
    assert warehouse.history()[-1][:2] == ("orders", "upserted")


def test_upsert_needs_key_properties(warehouse, run_target):
    text = singer(
        schema_message("nokey", {"id": {"type": "integer"}}), record_message("nokey", {"id": 1})
    )
    run = run_target(text, config={"load_method": "upsert"})
    assert run.returncode == 1
    assert "stream 'nokey', input line 1: load_method 'upsert' needs key properties" in run.stderr


def test_append_only_keeps_every_record(warehouse, run_target):
    cfg = {"load_method": "append-only", "batch_size_rows": 2}
    assert run_target(orders((1, "a"), (1, "b"), (2, "c")), config=cfg).returncode == 0
    assert run_target(orders((1, "d")), config=cfg).returncode == 0
    assert warehouse.table("orders", "name") == [(1, "a"), (1, "b"), (2, "c"), (1, "d")]
    assert warehouse.history()[-1][:3] == ("orders", "appended", 1)


def _versioned(version: int, rows: list[tuple[int, str]], *, leading: bool, trailing: bool):
    messages = [schema_message("items", {"id": {"type": "integer"}, "v": {"type": "string"}},
                               ["id"])]  # fmt: skip
    if leading:
        messages.append({"type": "ACTIVATE_VERSION", "stream": "items", "version": version})
    messages += [record_message("items", {"id": i, "v": v}, version=version) for i, v in rows]
    if trailing:
        messages.append({"type": "ACTIVATE_VERSION", "stream": "items", "version": version})
    return singer(*messages)


def test_activate_version_overwrite_leading_never_empties(warehouse, run_target):
    assert (
        run_target(_versioned(1, [(1, "a"), (2, "b")], leading=True, trailing=True)).returncode == 0
    )
    # leading ACTIVATE_VERSION then a failure: the old table must be intact
    broken = _versioned(2, [(3, "c")], leading=True, trailing=False) + "{not json\n"
    run = run_target(broken)
    assert run.returncode == 1
    assert warehouse.table("items") == [(1, "a"), (2, "b")]
    assert run_target(_versioned(3, [(3, "c")], leading=True, trailing=True)).returncode == 0
    assert warehouse.table("items") == [(3, "c")]


@pytest.mark.parametrize("hard_delete", [False, True])
def test_activate_version_upsert_removes_old_versions_after_commit(
    warehouse, run_target, hard_delete
):
    cfg = {"load_method": "upsert", "hard_delete": hard_delete}
    assert (
        run_target(
            _versioned(1, [(1, "a"), (2, "b")], leading=True, trailing=True), config=cfg
        ).returncode
        == 0
    )
    run = run_target(_versioned(2, [(2, "B"), (3, "c")], leading=True, trailing=True), config=cfg)
    assert run.returncode == 0, run.stderr
    if hard_delete:
        assert warehouse.query("SELECT id, v, _sdc_table_version FROM raw.items ORDER BY id") == [
            (2, "B", 2), (3, "c", 2),
        ]  # fmt: skip
    else:
        assert warehouse.query(
            "SELECT id, v, _sdc_table_version, _sdc_deleted_at IS NOT NULL FROM raw.items ORDER BY id"
        ) == [(1, "a", 1, True), (2, "B", 2, False), (3, "c", 2, False)]


def test_record_metadata_columns(warehouse, run_target):
    text = singer(
        schema_message("meta", {"id": {"type": "integer"}}, ["id"]),
        record_message("meta", {"id": 1}, version=7, time_extracted="2024-05-01T00:00:00Z"),
        {"type": "ACTIVATE_VERSION", "stream": "meta", "version": 7},
    )
    assert run_target(text, config={"add_record_metadata": True}).returncode == 0
    row = warehouse.query(
        "SELECT id, _sdc_extracted_at, _sdc_received_at IS NOT NULL, _sdc_table_version, "
        "_sdc_sequence > 0, _sdc_deleted_at FROM raw.meta"
    )
    assert row == [(1, dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc), True, 7, True, None)]


def test_unknown_message_types_are_skipped(warehouse, run_target):
    text = orders((1, "a")) + '{"type": "FUTURE", "x": 1}\n'
    run = run_target(text)
    assert run.returncode == 0
    assert "unknown message type 'FUTURE' ignored" in run.stderr
    assert warehouse.table("orders") == [(1, "a")]


def test_copy_text_escaping_and_array_literals_round_trip(warehouse, run_target):
    texts = ["tab\there", "new\nline", "cr\rret", "back\\slash", "\\N", 'quote"s', "ünï😀", ""]
    props = {
        "id": {"type": "integer"},
        "t": {"type": ["string", "null"]},
        "tags": {"type": ["array", "null"], "x-sql-datatype": "text[]"},
        "grid": {"type": ["array", "null"], "x-sql-datatype": "numeric[]"},
        "doc": {"type": ["object", "null"], "x-sql-datatype": "jsonb"},
    }
    rows = [
        {"id": i, "t": value, "tags": [value, None, "x,y", "{a}"],
         "grid": [[1.10, None], [-2, 3e2]], "doc": {"k": value}}
        for i, value in enumerate(texts)
    ]  # fmt: skip
    rows.append({"id": 99, "t": None, "tags": [], "grid": None, "doc": None})
    text = singer(schema_message("esc", props, ["id"]), *(record_message("esc", r) for r in rows))
    assert run_target(text).returncode == 0
    got = warehouse.query("SELECT id, t, tags, grid::text, doc FROM raw.esc ORDER BY id")
    for (i, t, tags, grid, doc), value in zip(got[:-1], texts, strict=True):
        assert (t, tags, doc) == (value, [value, None, "x,y", "{a}"], {"k": value}), i
        assert grid == "{{1.1,NULL},{-2,300.0}}"  # the JSON text carries 1.1 and 300.0
    assert got[-1] == (99, None, [], None, None)


def test_records_without_json_escapes_land_exactly_too(warehouse, run_target):
    # A record whose JSON holds no backslash takes the formatter's unescaped variant: raw
    # UTF-8 text, JSON whitespace (a tab, a carriage return) inside a jsonb value, numbers, NULLs.
    props = {
        "id": {"type": "integer"},
        "t": {"type": ["string", "null"]},
        "n": {"type": ["number", "string", "null"], "x-sql-datatype": "numeric"},
        "tags": {"type": ["array", "null"], "x-sql-datatype": "text[]"},
        "doc": {"type": ["object", "null"], "x-sql-datatype": "jsonb"},
    }
    lines = [
        '{"type":"RECORD","stream":"plain","record":{"id":1,"t":"ünï😀 ok","n":-12.50,'
        '"tags":["a b","ç"],"doc":{"k":\t"v", "x":[1,\r2]}}}',
        '{"type":"RECORD","stream":"plain","record":{"id":2,"t":null,"n":"NaN","tags":[],'
        '"doc":null}}',
        '{"type":"RECORD","stream":"plain","record":{"id":3,"n":1e3}}',
    ]
    text = singer(schema_message("plain", props, ["id"]), *lines)
    assert run_target(text).returncode == 0
    got = warehouse.query("SELECT id, t, n::text, tags, doc FROM raw.plain ORDER BY id")
    assert got == [
        (1, "ünï😀 ok", "-12.50", ["a b", "ç"], {"k": "v", "x": [1, 2]}),
        (2, None, "NaN", [], None),
        (3, None, "1000", None, None),
    ]


# One column of each kind the record paths treat differently (for the path-equality tests).
MIXED_PROPERTIES = {
    "id": {"type": "integer"},
    "t": {"type": ["string", "null"]},
    "n": {"type": ["number", "string", "null"], "x-sql-datatype": "numeric"},
    "ok": {"type": ["boolean", "null"]},
    "tags": {"type": ["array", "null"], "x-sql-datatype": "text[]"},
    "doc": {"type": ["object", "null"], "x-sql-datatype": "jsonb"},
}


def test_single_pass_and_general_record_paths_load_the_same_table(warehouse, run_target):
    # Compact RECORD lines (as SDK taps write them) take the single-pass path; the same
    # records spaced out take the general one. Both must give the same table.
    rows = [
        {"id": 1, "t": "a\tb\\c", "n": 1.25, "ok": True, "tags": ["x", None], "doc": {"k": 1}},
        {"id": 2, "t": "ünï", "n": "NaN", "ok": None, "tags": [], "doc": None},
        {"id": 3, "t": None, "n": -7, "ok": False, "tags": None, "doc": {"k": "\n"}},
        {"id": 4, "n": 10, "extra": "ignored"},
    ]
    query = "SELECT id, t, n::text, ok, tags, doc FROM raw.same ORDER BY id"
    compact = [
        json.dumps(record_message("same", r, version=5), separators=(",", ":")) for r in rows
    ]
    activate = {"type": "ACTIVATE_VERSION", "stream": "same", "version": 5}
    schema = schema_message("same", MIXED_PROPERTIES, ["id"])
    assert run_target(singer(schema, *compact, activate)).returncode == 0
    single_pass = warehouse.query(query)
    spaced = [record_message("same", r, version=5) for r in rows]
    assert run_target(singer(schema, *spaced, activate)).returncode == 0
    assert warehouse.query(query) == single_pass
    assert [row[0] for row in single_pass] == [1, 2, 3, 4]


def test_without_its_c_converter_the_target_loads_the_same_table(warehouse, run_target, tmp_path):
    # Where no C compiler was at hand at install, the Python path does all the work: the same
    # table, and a log line that says which conversion ran.
    rows = [
        {"id": 1, "t": "a\tb\\c\n", "n": 1.25, "ok": True, "tags": ["x", None, 'q"'], "doc": {}},
        {"id": 2, "t": "ünï😀", "n": "NaN", "ok": None, "tags": [], "doc": {"k": [1, "\n"]}},
        {"id": 3, "n": -7e-3},
    ]
    lines = [json.dumps(record_message("c", r, version=9), separators=(",", ":")) for r in rows]
    text = singer(
        schema_message("c", MIXED_PROPERTIES, ["id"]),
        *lines,
        {"type": "ACTIVATE_VERSION", "stream": "c", "version": 9},
    )
    query = "SELECT id, t, n::text, ok, tags, doc FROM raw.c ORDER BY id"
    compiled = run_target(text)
    assert compiled.returncode == 0, compiled.stderr
    assert "Record conversion: compiled (C)" in compiled.stderr
    loaded = warehouse.query(query)

    python_only = run_target(text, env=without_c_modules(tmp_path))
    assert python_only.returncode == 0, python_only.stderr
    assert "Record conversion: Python (the C converter was not built" in python_only.stderr
    assert warehouse.query(query) == loaded
    assert [row[0] for row in loaded] == [1, 2, 3]
