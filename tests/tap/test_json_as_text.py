"""json and jsonb through the real tap and target with `json_as_text`: exact, null kept.

The JSON value `null` and SQL NULL are different answers to an analyst (`col IS NULL` versus
`col = 'null'`), and a json column's whitespace, key order and duplicate keys are part of its
value. With `json_as_text` the tap sends each value's own text as a marked string, and the
target hands that text to the column type's input function, in every mode a stream can take.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.c_modules import without_c_modules
from testkit.postgres import query, run_sql
from testkit.tap import TAP_EXECUTABLE

pytestmark = pytest.mark.integration

TARGET_EXECUTABLE = str(Path(sys.executable).parent / "target-warehouse-raw")

# Every value a json or jsonb column may hold that JSON-in-JSON could blur: the JSON null and
# SQL NULL, whitespace (tabs and newlines too), key order, duplicate keys, unicode escapes and
# raw multi-byte text, nested and empty values, scalars, numbers beyond double precision.
VALUES = [
    "null",
    None,
    '{"b": 1,  "a": 2, "a": 3}',
    '\n\t[1, 2.50 , "x"]  ',
    '{"k": "\\u00e9\\ud83d\\ude00 é😀", "q": "say \\"hi\\"\\\\"}',
    '{"a": {"b": [1, {"c": null}, []]}, "e": {}}',
    "{}",
    "[]",
    '""',
    '"null"',
    "1.50",
    "-0",
    "1e400",
    "12345678901234567890.000000000001",
    "true",
    "false",
    '"text with\\nnewline and tab\\t"',
]
JSON_ONLY = ['"\\u0000 is an escape in json text, not a NUL"']  # jsonb refuses \u0000

DDL = """
CREATE DOMAIN document AS jsonb;
CREATE TABLE refills_production (
    id integer PRIMARY KEY,
    j json,
    jb jsonb,
    doc document,
    ja json[],
    jba jsonb[]
);
"""

ARRAYS = [
    ("ARRAY['{\"a\":  1}', 'null', NULL, '\"\"']::json[]",
     "ARRAY[ARRAY['{\"b\": [1, 2]}', NULL], ARRAY['null', '{}']]::jsonb[]"),
    ("'{}'::json[]", "'{}'::jsonb[]"),
    ("NULL", "ARRAY[NULL]::jsonb[]"),
]  # fmt: skip

COLUMNS = {"j": "json", "jb": "jsonb", "doc": "jsonb", "ja": "json[]", "jba": "jsonb[]"}


def literal(value: str | None, sql_type: str) -> str:
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + f"'::{sql_type}"


@pytest.fixture
def json_source(pg_server, make_database) -> str:
    """A refills database whose table holds every value above, one per row."""
    name = make_database("refills")
    rows = []
    for i, value in enumerate([*VALUES, *JSON_ONLY], start=1):
        jsonb_value = None if value in JSON_ONLY else value
        array, jsonb_array = ARRAYS[i % len(ARRAYS)]
        rows.append(
            f"({i}, {literal(value, 'json')}, {literal(jsonb_value, 'jsonb')}, "
            f"{literal(jsonb_value, 'document')}, {array}, {jsonb_array})"
        )
    run_sql(pg_server.dsn(name), DDL, f"INSERT INTO refills_production VALUES {', '.join(rows)}")
    return name


def column_texts(dsn: str, table: str) -> list[tuple]:
    """Per row: each column's text form and whether it is SQL NULL."""
    picks = ", ".join(f"{c}::text, {c} IS NULL" for c in COLUMNS)
    return query(dsn, f"SELECT id, {picks} FROM {table} ORDER BY id")


def column_types(dsn: str, table: str) -> dict[str, str]:
    rows = query(
        dsn,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (table,),
    )
    return dict(rows)


def pipe(tap_config: dict, target_config: dict, tmp_path: Path, env: dict | None = None) -> str:
    """`tap-manufacturing --config tap.json | target-warehouse-raw --config target.json`;
    returns the tap's output (for a look at the records)."""
    tap_path, target_path = tmp_path / "tap.json", tmp_path / "target.json"
    tap_path.write_text(json.dumps(tap_config))
    target_path.write_text(json.dumps(target_config))
    tap = subprocess.run(
        [TAP_EXECUTABLE, "--config", str(tap_path)], capture_output=True, timeout=120, check=False
    )
    assert tap.returncode == 0, tap.stderr.decode()[-3000:]
    target = subprocess.run(
        [TARGET_EXECUTABLE, "--config", str(target_path)],
        input=tap.stdout,
        capture_output=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert target.returncode == 0, target.stderr.decode()[-3000:]
    return tap.stdout.decode()


@pytest.mark.parametrize(
    "mode", ["full-table", "incremental", "batch", "full-table, no C converter"]
)
def test_json_and_jsonb_land_exactly_with_json_null_kept(
    pg_server, make_database, json_source, tmp_path, mode
):
    source = {"host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
              "database": json_source}  # fmt: skip
    if mode == "incremental":
        source |= {"replication_method": "INCREMENTAL", "replication_key": "id"}
    tap_config = {"sources": {"refills": source}, "json_as_text": True}
    if mode == "batch":
        folder = tmp_path / "batches"
        tap_config["batch_config"] = {
            "encoding": {"format": "jsonl", "compression": "none"},
            "storage": {"root": folder.as_uri()},
        }
    warehouse = make_database("warehouse")
    target_config = {"host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
                     "database": warehouse, "progress_interval": 0}  # fmt: skip
    env = None
    if mode.endswith("no C converter"):
        env = {**os.environ, **without_c_modules(tmp_path)}
    output = pipe(tap_config, target_config, tmp_path, env)

    source_dsn, warehouse_dsn = pg_server.dsn(json_source), pg_server.dsn(warehouse)
    assert column_types(warehouse_dsn, "raw.refills") == {"id": "integer", **COLUMNS}
    expected = column_texts(source_dsn, "refills_production")
    assert column_texts(warehouse_dsn, "raw.refills") == expected
    # The two nulls stay apart: row 1 holds the JSON null, row 2 SQL NULL.
    assert query(warehouse_dsn, "SELECT id FROM raw.refills WHERE jb = 'null'") == [(1,)]
    assert query(warehouse_dsn, "SELECT id FROM raw.refills WHERE jb IS NULL ORDER BY id") == [
        (2,), (len(VALUES) + 1,),
    ]  # fmt: skip
    if mode != "batch":
        records = [json.loads(line)["record"] for line in output.splitlines()
                   if '"type":"RECORD"' in line]  # fmt: skip
        assert [r["j"] for r in records] == [*VALUES, *JSON_ONLY]  # the source's own text


def test_the_schema_marks_json_text_and_keeps_json_apart_from_jsonb(
    pg_server, json_source, run_tap
):
    source = {"host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
              "database": json_source}  # fmt: skip
    run = run_tap({"sources": {"refills": source}, "json_as_text": True})
    properties = run.of_type("SCHEMA", "refills")[0]["schema"]["properties"]
    text = {"type": ["string", "null"], "contentMediaType": "application/json"}
    assert properties["j"] == {**text, "x-sql-datatype": "json"}
    assert properties["jb"] == {**text, "x-sql-datatype": "jsonb"}
    assert properties["doc"] == {**text, "x-sql-datatype": "jsonb"}
    assert properties["ja"] == {"type": ["array", "null"], "items": text,
                                "x-sql-datatype": "json[]"}  # fmt: skip
    third = run.records("refills")[2]  # id 3 holds the first of ARRAYS
    assert third["ja"] == ['{"a":  1}', "null", None, '""']
    assert third["jba"] == [['{"b": [1, 2]}', None], ["null", "{}"]]


def test_without_json_as_text_the_tap_sends_json_values_as_before(pg_server, json_source, run_tap):
    """Any Singer target keeps getting JSON values unless the setting is on."""
    source = {"host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
              "database": json_source}  # fmt: skip
    # A json value with the escape \u0000 cannot pass through jsonb: a documented limit of
    # this encoding, which json_as_text does not have.
    run_sql(pg_server.dsn(json_source), f"DELETE FROM refills_production WHERE id > {len(VALUES)}")
    run = run_tap({"sources": {"refills": source}})
    properties = run.of_type("SCHEMA", "refills")[0]["schema"]["properties"]
    assert "contentMediaType" not in properties["j"]
    assert properties["j"]["x-sql-datatype"] == "jsonb"
    records = run.records("refills")
    assert records[2]["j"] == {"a": 3, "b": 1}  # normalised through jsonb
    assert [records[0]["jb"], records[1]["jb"]] == [None, None]  # JSON null = SQL NULL here


def test_a_jsonb_column_of_an_earlier_load_follows_the_source_to_json(
    pg_server, make_database, json_source, tmp_path
):
    """Earlier versions (and the setting off) loaded json columns as jsonb; turning
    json_as_text on changes the column to json and then lands the source's text exactly."""
    run_sql(pg_server.dsn(json_source), f"DELETE FROM refills_production WHERE id > {len(VALUES)}")
    source = {"host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
              "database": json_source}  # fmt: skip
    warehouse = make_database("warehouse")
    target_config = {"host": pg_server.host, "port": pg_server.port, "user": pg_server.user,
                     "database": warehouse, "progress_interval": 0}  # fmt: skip
    warehouse_dsn = pg_server.dsn(warehouse)
    pipe({"sources": {"refills": source}}, target_config, tmp_path)
    assert column_types(warehouse_dsn, "raw.refills")["j"] == "jsonb"
    pipe({"sources": {"refills": source}, "json_as_text": True}, target_config, tmp_path)
    assert column_types(warehouse_dsn, "raw.refills") == {"id": "integer", **COLUMNS}
    expected = column_texts(pg_server.dsn(json_source), "refills_production")
    assert column_texts(warehouse_dsn, "raw.refills") == expected
