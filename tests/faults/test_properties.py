"""Property: random Singer streams through the real target land exactly as sent.

Hypothesis draws a stream name and column names (plain identifiers and awkward ones), a type
per column (with `x-sql-datatype` hints where the type needs one) and values, pipes them into
the target, and compares every landed value in SQL with the value the test itself casts from
text (`col IS NOT DISTINCT FROM '<text>'::type`), so the target's JSON path is checked
against PostgreSQL's own input functions.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit.faults import count
from testkit.singer import record_message, singer

pytestmark = [pytest.mark.integration, pytest.mark.fault]

TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)

# name -> (JSON Schema property, SQL type, strategy of (JSON value, SQL text or None))
TYPES = {
    "bigint": ({"type": ["integer", "null"]}, "bigint",
               st.integers(-(2**63), 2**63 - 1).map(lambda v: (v, str(v)))),
    "numeric": ({"type": ["number", "string", "null"], "x-sql-datatype": "numeric(12,3)"},
                "numeric(12,3)",
                st.one_of(st.decimals(min_value=-(10**8), max_value=10**8, places=3,
                                      allow_nan=False).map(lambda d: (str(d), str(d))),
                          st.just(("NaN", "NaN")))),
    "double": ({"type": ["number", "string", "null"], "x-sql-datatype": "double precision"},
               "double precision",
               st.one_of(FINITE.map(lambda f: (f, repr(f))),
                         st.sampled_from([("NaN", "NaN"), ("Infinity", "Infinity"),
                                          ("-Infinity", "-Infinity")]))),
    "timestamptz": ({"type": ["string", "null"], "format": "date-time"}, "timestamptz",
                    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                                 timezones=st.just(UTC))
                    .map(lambda d: (d.isoformat(), d.isoformat()))),
    "date": ({"type": ["string", "null"], "format": "date"}, "date",
             st.dates().map(lambda d: (d.isoformat(), d.isoformat()))),
    "jsonb": ({"type": ["object", "array", "null"]}, "jsonb",
              st.dictionaries(TEXT, st.one_of(st.integers(-1000, 1000), TEXT, st.booleans(),
                                              st.none()), max_size=4)
              .map(lambda v: (v, json.dumps(v)))),
    "text[]": ({"type": ["array", "null"], "items": {"type": ["string", "null"]},
                "x-sql-datatype": "text[]"}, "text[]",
               st.lists(TEXT, max_size=4).map(lambda v: (v, v))),
    "bytea": ({"type": ["string", "null"], "contentEncoding": "base64"}, "bytea",
              st.binary(max_size=40).map(
                  lambda b: (base64.b64encode(b).decode(), psycopg2.Binary(b)))),
    "interval": ({"type": ["string", "null"], "x-sql-datatype": "interval"}, "interval",
                 st.tuples(st.integers(0, 50), st.integers(0, 11), st.integers(0, 40),
                           st.integers(0, 23), st.integers(0, 59)).map(
                     lambda t: (f"P{t[0]}Y{t[1]}M{t[2]}DT{t[3]}H{t[4]}M",) * 2)),
    "boolean": ({"type": ["boolean", "null"]}, "boolean",
                st.booleans().map(lambda b: (b, str(b).lower()))),
    "text": ({"type": ["string", "null"]}, "text", TEXT.map(lambda s: (s, s))),
}  # fmt: skip

PLAIN = st.from_regex(r"\A[a-z][a-z0-9_]{0,15}\Z")
AWKWARD = st.sampled_from(["Customer Name", "select", "order-id", "1st", "Ünïcode col",
                           "MixedCase", "x" * 70, "a.b", "user"])  # fmt: skip
NAMES = st.one_of(PLAIN, AWKWARD)


@st.composite
def streams(draw):
    names = draw(st.lists(NAMES, min_size=1, max_size=6, unique_by=str.lower))
    kinds = [draw(st.sampled_from(sorted(TYPES))) for _ in names]
    rows = draw(st.integers(0, 6))
    values = [[draw(st.one_of(st.none(), TYPES[kind][2])) for kind in kinds] for _ in range(rows)]
    return names, kinds, values


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=streams())
def test_what_lands_equals_what_was_sent(fault_warehouse, case):
    names, kinds, values = case
    stream = "prop-" + uuid.uuid4().hex[:8]
    props = {"_row": {"type": "integer"}} | {
        n: TYPES[k][0] for n, k in zip(names, kinds, strict=True)
    }
    text = singer(
        {"type": "SCHEMA", "stream": stream, "key_properties": ["_row"],
         "schema": {"type": "object", "properties": props}},
        *(record_message(stream, {"_row": i} | {n: (None if v is None else v[0])
                                          for n, v in zip(names, row, strict=True)})
          for i, row in enumerate(values)),
    )  # fmt: skip
    done = fault_warehouse.run(text)
    count("property examples")
    assert done.returncode == 0, done.stderr[-3000:]
    db = fault_warehouse.db
    table = stream  # names land byte for byte
    columns = [c for (c,) in db.query(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum", (f'raw."{table}"',))]  # fmt: skip
    assert columns[0] == "_row"
    assert len(columns) == len(names) + 1
    assert db.query(f'SELECT count(*) FROM raw."{table}"') == [(len(values),)]
    for i, row in enumerate(values):
        for column, kind, value in zip(columns[1:], kinds, row, strict=True):
            sql_type = TYPES[kind][1]
            expected = None if value is None else value[1]
            ((same,),) = db.query(
                f'SELECT "{column}" IS NOT DISTINCT FROM %s::{sql_type} '
                f'FROM raw."{table}" WHERE _row = %s',
                (expected, i),
            )
            count("rows verified", 0)
            assert same, (column, kind, value)
