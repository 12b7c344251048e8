"""A column whose type changes between runs: followed when nothing can be lost, else refused.

The warehouse once kept `numeric(10,4)` when the source went to `numeric(14,6)`, and every
value arrived rounded to four places, exit 0.
"""

from __future__ import annotations

import pytest

from target_warehouse_raw.schema.type_change import canonical, holds, plan
from testkit.singer import record_message, schema_message, singer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("live", "stream", "action"),
    [
        ("numeric(10,4)", "numeric(14,6)", "follow"),
        ("numeric(10,4)", "numeric(12,4)", "follow"),
        ("numeric(10,4)", "numeric", "follow"),
        ("numeric(14,6)", "numeric(10,4)", "refuse"),
        ("numeric(10,4)", "numeric(10,6)", "refuse"),  # fewer digits before the point
        ("numeric(10,4)", "numeric(12,2)", "refuse"),  # fewer after it: rounding
        ("smallint", "integer", "follow"),
        ("integer", "bigint", "follow"),
        ("bigint", "integer", "refuse"),
        ("integer", "numeric(12,2)", "follow"),
        ("integer", "numeric(11,2)", "refuse"),
        ("character varying(20)", "character varying(40)", "follow"),
        ("character varying(20)", "text", "follow"),
        ("character varying(40)", "character varying(20)", "refuse"),
        ("text", "character varying(20)", "refuse"),
        ("timestamp(3) without time zone", "timestamp without time zone", "follow"),
        ("timestamp with time zone", "timestamp(3) with time zone", "refuse"),
        ("timestamp without time zone", "timestamp with time zone", "refuse"),
        ("time(2) without time zone", "time(4) without time zone", "follow"),
        ("interval(0)", "interval", "follow"),
        ("real", "double precision", "follow"),
        ("double precision", "real", "refuse"),
        ("integer[]", "bigint[]", "follow"),
        ("integer[]", "integer", "refuse"),
        ("integer", "text", "follow"),
        ("bit(3)", "bit varying(5)", "follow"),
        ("bit varying(5)", "bit varying(3)", "refuse"),
        ("int4", "integer", "same"),
        ("varchar(20)", "character varying(20)", "same"),
        ("timestamptz", "timestamp with time zone", "same"),
    ],
)
def test_a_type_is_followed_only_when_it_holds_every_old_value(live, stream, action):
    assert plan(live, stream, exact=True).action == action


def test_a_json_schema_type_the_live_column_holds_keeps_the_live_type():
    # Another tap: the live column is text, the schema now says integer (no exact type).
    assert plan("text", "bigint", exact=False).action == "keep"
    assert plan("text", "bigint", exact=True).action == "refuse"
    assert plan("bigint", "numeric", exact=False).action == "follow"
    assert plan("bigint", "jsonb", exact=False).using('"c"') == 'to_jsonb("c")'


def test_aliases_are_read_in_format_type_spelling():
    assert canonical("decimal(10,2)[]") == "numeric(10,2)[]"
    assert canonical("timestamp(3)") == "timestamp(3) without time zone"
    assert canonical("float(10)") == "real"
    assert canonical('"char"') == '"char"'
    assert holds("numeric", "numeric(10,4)")
    assert not holds("numeric(10,4)", "numeric")


def _stream(sql_type: str, *values: str, version: int = 1) -> str:
    props = {
        "id": {"type": "integer"},
        "ink_ml": {"type": ["number", "string", "null"], "x-sql-datatype": sql_type},
    }
    return singer(
        schema_message("lines", props, ["id"]),
        *(
            record_message("lines", {"id": i, "ink_ml": v}, version=version)
            for i, v in enumerate(values)
        ),
        {"type": "ACTIVATE_VERSION", "stream": "lines", "version": version},
    )


def _rows(warehouse) -> list[tuple]:
    return warehouse.query("SELECT id, ink_ml::text FROM raw.lines ORDER BY id")


@pytest.mark.parametrize("load_method", ["auto", "upsert"])
def test_a_widened_numeric_column_is_followed_and_nothing_is_rounded(
    warehouse, run_target, load_method
):
    config = {"load_method": load_method}
    first = run_target(_stream("numeric(10,4)", "2.4286", "1.5000"), config=config)
    assert first.returncode == 0, first.stderr
    second = run_target(
        _stream("numeric(14,6)", "2.428600", "12345678.123456", version=2), config=config
    )
    assert second.returncode == 0, second.stderr
    assert dict(warehouse.columns("lines"))["ink_ml"] == "numeric(14,6)"
    assert _rows(warehouse) == [(0, "2.428600"), (1, "12345678.123456")]


def test_a_narrowed_numeric_column_is_refused_and_the_table_kept(warehouse, run_target):
    assert run_target(_stream("numeric(14,6)", "2.428600", "12345678.123456")).returncode == 0
    run = run_target(_stream("numeric(10,4)", "2.4286", version=2))
    assert run.returncode == 1
    assert (
        'stream \'lines\', input line 1: column "ink_ml" of "raw"."lines" is numeric(14,6) in '
        "the warehouse and the stream now sends numeric(10,4): numeric(10,4) cannot hold every "
        "value the column holds" in run.stderr
    ), run.stderr
    assert 'ALTER TABLE "raw"."lines" ALTER COLUMN "ink_ml" TYPE numeric(10,4)' in run.stderr
    assert dict(warehouse.columns("lines"))["ink_ml"] == "numeric(14,6)"
    assert _rows(warehouse) == [(0, "2.428600"), (1, "12345678.123456")]


def test_a_column_the_stream_no_longer_sends_is_kept_and_said(warehouse, run_target):
    props = {"id": {"type": "integer"}, "name": {"type": "string"}, "gone": {"type": "string"}}
    first = singer(schema_message("parts", props, ["id"]),
                   record_message("parts", {"id": 1, "name": "a", "gone": "x"}))  # fmt: skip
    assert run_target(first).returncode == 0
    del props["gone"]
    second = singer(
        schema_message("parts", props, ["id"]), record_message("parts", {"id": 2, "name": "b"})
    )
    run = run_target(second)
    assert run.returncode == 0, run.stderr
    assert (
        """Stream 'parts': column(s) "gone" of "raw"."parts" are no longer in the stream's """
        "schema (dropped at the source?): kept, NULL in the rows this run writes" in run.stderr
    )
    assert warehouse.query("SELECT id, name, gone FROM raw.parts") == [(2, "b", None)]
    notes = warehouse.query("SELECT notes FROM raw._load_history ORDER BY id")
    assert notes == [
        (None,),
        ("columns no longer sent by the stream, kept and NULL in new rows: gone",),
    ]
