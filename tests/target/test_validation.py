"""Record validation against the stream's schema: every bad record is refused with its stream,
input line and column; records that the rules allow are never refused."""

# ruff: noqa: E501 - long expected-value literals read better on one line
from __future__ import annotations

import pytest

from testkit.singer import record_message, schema_message, singer

pytestmark = pytest.mark.integration

PROPS = {
    "id": {"type": "integer"},
    "n": {"type": "integer"},
    "label": {"type": ["string", "null"]},
    "amount": {"type": ["number", "null"]},
    "extra": {},
}
SCHEMA = schema_message("items", PROPS, ["id"], required=["label"])


def _good(i: int) -> dict:
    return record_message("items", {"id": i, "n": i, "label": f"l{i}", "amount": 1.25})


BAD = {
    "string where an integer is required": (
        {"id": 9, "n": "12", "label": "x"},
        "column 'n': JSON type string is not allowed by the schema (allowed: number)",
    ),
    "null in a non-null column": (
        {"id": 9, "n": None, "label": "x"},
        "column 'n': null is not allowed by the schema",
    ),
    "missing key property": ({"n": 1, "label": "x"}, "column 'id': key property is missing or null"),
    "null key property": ({"id": None, "label": "x"}, "column 'id': key property is missing or null"),
    "string key": ({"id": "9", "label": "x"}, "column 'id': JSON type string is not allowed by the schema (allowed: number)"),
    "missing required property": ({"id": 9, "n": 1}, "column 'label': required property is missing"),
    "object where a number is allowed": (
        {"id": 9, "label": "x", "amount": {"v": 1}},
        "column 'amount': JSON type object is not allowed by the schema (allowed: null, number)",
    ),
    "boolean where a string is allowed": (
        {"id": 9, "label": True},
        "column 'label': JSON type boolean is not allowed by the schema (allowed: null, string)",
    ),
    "array record": ([1, 2], "the record is not a JSON object"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_record_is_refused_with_stream_line_and_column(warehouse, run_target, case):
    data, message = BAD[case]
    text = singer(SCHEMA, _good(1), _good(2), record_message("items", data), _good(4),
                  {"type": "STATE", "value": {"items": 4}})  # fmt: skip
    run = run_target(text)
    assert run.returncode == 1
    assert f"stream 'items', input line 4, {message}" in run.stderr or (
        message == "the record is not a JSON object"
        and f"stream 'items', input line 4: {message}" in run.stderr
    ), run.stderr[-2000:]
    assert run.stdout == ""
    assert warehouse.query("SELECT to_regclass('raw.items')") == [(None,)]
    assert warehouse.history()[-1][1] == "failed"


def test_allowed_values_are_never_refused(warehouse, run_target):
    """Numbers beyond float range, any JSON in an untyped property, duplicate keys (the last
    one counts, as in jsonb), absent optional properties, unknown properties."""
    props = {**PROPS, "n": {"type": "number", "x-sql-datatype": "numeric"}}
    text = singer(
        schema_message("items", props, ["id"], required=["label"]),
        '{"type": "RECORD", "stream": "items", "record": {"id": 1, "n": 1000000000000000000000000000000, "label": null, "amount": 1e400, "extra": [1, {"a": null}]}}',
        '{"type": "RECORD", "stream": "items", "record": {"id": 2, "n": "bad", "n": 7, "label": "y"}}',
        record_message("items", {"id": 3, "label": "z", "unknown": {"deep": [1]}}),
    )  # fmt: skip
    run = run_target(text)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = warehouse.query(
        "SELECT id, n::text, label, amount::text, extra::text FROM raw.items ORDER BY id"
    )
    assert rows[0][:3] == (1, str(10**30), None)
    assert rows[0][3] == "1" + "0" * 400
    assert rows[0][4] == '[1, {"a": null}]'
    assert rows[1] == (2, "7", "y", None, None)
    assert rows[2] == (3, None, "z", None, None)


def test_validation_error_in_a_later_batch_names_the_right_line(warehouse, run_target):
    rows = [_good(i) for i in range(1, 3001)]
    rows[2500]["record"]["n"] = "x"
    run = run_target(singer(SCHEMA, *rows), config={"batch_size_rows": 400})
    assert run.returncode == 1
    assert "stream 'items', input line 2502, column 'n': JSON type string" in run.stderr
    assert warehouse.query("SELECT to_regclass('raw.items')") == [(None,)]


def test_earlier_cast_error_wins_over_a_later_schema_violation(warehouse, run_target):
    """Batches are loaded while later input is read: the first bad line is still reported."""
    rows = [_good(i) for i in range(1, 3001)]
    rows[300]["record"]["n"] = 1.5  # a JSON number, refused by bigint on the server
    rows[2500]["record"]["n"] = "x"  # refused by validation while reading
    run = run_target(singer(SCHEMA, *rows), config={"batch_size_rows": 400})
    assert run.returncode == 1
    assert (
        "stream 'items', input line 302, column 'n': invalid input syntax for type bigint"
        in run.stderr
    ), run.stderr[-2000:]
    assert "line 2502" not in run.stderr
