"""The bad-input corpus: each case has one defined behaviour (see README.md in this folder).

Every case first loads good content into two tables, `parts` and `bins`. The case's input then
carries a complete new `bins` stream followed by the `parts` stream with the fault. A refused
case must exit 1 with an error naming the stream, the input line (and the column where one is
involved), write no STATE, and leave `parts` exactly as it was. `bins` holds either its old
content or its complete new content: the target commits streams one after the other at the
end of input, so a fault found only when the last batch of `parts` is flushed comes after
`bins` has committed (see `test_a_refused_run_commits_no_stream`). A loaded case must land
exactly what was sent.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

import pytest

from testkit.faults import assert_same_content, count
from testkit.postgres import Db
from testkit.singer import record_message, schema_message, singer, state_message

pytestmark = [pytest.mark.integration, pytest.mark.fault]

PARTS = {
    "id": {"type": "integer"},
    "name": {"type": ["string", "null"]},
    "ok": {"type": ["boolean", "null"]},
    "meta": {"type": ["object", "null"]},
}
BINS = {"code": {"type": "string"}, "holds": {"type": ["integer", "null"]}}
HEADER = singer(
    schema_message("bins", BINS, ["code"]),
    *(record_message("bins", {"code": f"N{i}", "holds": i}) for i in range(5)),
    schema_message("parts", PARTS, ["id"]),
    record_message("parts", {"id": 100, "name": "fine", "ok": True, "meta": {"a": 1}}),
)
HEADER_LINES = HEADER.count("\n")  # 8: the fault is on line 9 unless a case says otherwise
FAULT_LINE = HEADER_LINES + 1
CLOSE = singer(state_message({"run": "bad"}))


def good_content() -> str:
    return singer(
        schema_message("bins", BINS, ["code"]),
        *(record_message("bins", {"code": f"B{i}", "holds": i}) for i in range(3)),
        schema_message("parts", PARTS, ["id"]),
        *(record_message("parts", {"id": i, "name": f"p{i}", "ok": i % 2 == 0, "meta": {"i": i}})
          for i in range(1, 4)),
        state_message({"run": "good"}),
    )  # fmt: skip


@dataclass
class Refused:
    """Input after the header, and the error it must produce (a regular expression)."""

    body: str
    error: str
    config: dict = field(default_factory=dict)
    header: str = HEADER


def rec(data: dict) -> str:
    return json.dumps(record_message("parts", data))


REFUSED = {
    "truncated JSON at end of input": Refused(
        '{"type": "RECORD", "stream": "parts", "record": {"id": 7, "na',
        rf"input line {FAULT_LINE}: malformed JSON",
    ),
    "truncated JSON mid-stream": Refused(
        '{"type": "RECORD", "stream": "parts", "record": {"id": 7\n' + rec({"id": 8}) + "\n",
        rf"input line {FAULT_LINE}: malformed JSON",
    ),
    "non-JSON line": Refused("this is not json\n", rf"input line {FAULT_LINE}: malformed JSON"),
    "JSON that is not a message": Refused(
        "[1, 2, 3]\n", rf"input line {FAULT_LINE}: not a Singer message"
    ),
    "message without type": Refused(
        '{"stream": "parts", "record": {"id": 1}}\n',
        rf"input line {FAULT_LINE}: not a Singer message",
    ),
    "RECORD before SCHEMA": Refused(
        "",
        r"stream 'parts', input line 1: RECORD before any SCHEMA",
        header=rec({"id": 1}) + "\n" + HEADER,
    ),
    "missing key property": Refused(
        rec({"name": "no key"}) + "\n",
        rf"stream 'parts', input line {FAULT_LINE}, column 'id': key property is missing",
    ),
    "string for boolean": Refused(
        rec({"id": 7, "ok": "yes"}) + "\n",
        rf"stream 'parts', input line {FAULT_LINE}, column 'ok': JSON type string is not allowed",
    ),
    "object for integer key": Refused(
        rec({"id": {"x": 1}}) + "\n",
        rf"stream 'parts', input line {FAULT_LINE}, column 'id': JSON type object is not allowed",
    ),
    "array for object": Refused(
        rec({"id": 7, "meta": [1]}) + "\n",
        rf"stream 'parts', input line {FAULT_LINE}, column 'meta': JSON type array is not allowed",
    ),
    "integer out of bigint range": Refused(
        rec({"id": 2**70}) + "\n",
        rf"stream 'parts', input line {FAULT_LINE}, column 'id': .*out of range",
    ),
    "fraction for integer": Refused(
        rec({"id": 7.5}) + "\n",
        rf"stream 'parts', input line {FAULT_LINE}, column 'id': .*bigint",
    ),
    "NUL character in text": Refused(
        rec({"id": 7, "name": "a\u0000b"}) + "\n",
        rf"stream 'parts', input line {FAULT_LINE}, column 'name': .*NUL",
    ),
    "NUL character in JSON": Refused(
        rec({"id": 7, "meta": {"k": "x\u0000y"}}) + "\n",
        rf"stream 'parts', input line {FAULT_LINE}, column 'meta': .*NUL",
    ),
    "NUL character in a JSON key": Refused(
        rec({"id": 7, "meta": {"k\u0000": 1}}) + "\n",
        rf"stream 'parts', input line {FAULT_LINE}, column 'meta': .*NUL",
    ),
    "SCHEMA without properties": Refused(
        json.dumps(
            {
                "type": "SCHEMA",
                "stream": "parts",
                "key_properties": [],
                "schema": {"type": "object"},
            }
        )
        + "\n",
        rf"stream 'parts', input line {FAULT_LINE}: .*properties",
    ),
    "BATCH message naming a file that does not exist": Refused(
        json.dumps(
            {
                "type": "BATCH",
                "stream": "parts",
                "encoding": {"format": "jsonl", "compression": "none"},
                "manifest": ["file:///nonexistent/parts-00001.jsonl"],
            }
        )
        + "\n",
        rf"stream 'parts', input line {FAULT_LINE}: cannot open BATCH file "
        r"/nonexistent/parts-00001\.jsonl",
    ),
    "BATCH message in an unsupported format": Refused(
        json.dumps(
            {"type": "BATCH", "stream": "parts", "encoding": {"format": "parquet"}, "manifest": []}
        )
        + "\n",
        rf"stream 'parts', input line {FAULT_LINE}: BATCH files in format 'parquet' are not",
    ),
    "SCHEMA change mid-stream that breaks a value": Refused(
        json.dumps(schema_message("parts", {**PARTS, "ok": {"type": ["integer", "null"]}}, ["id"]))
        + "\n"
        + rec({"id": 7, "ok": 5})
        + "\n",
        # Refused at the SCHEMA line: neither boolean nor bigint holds the other's values.
        rf"stream 'parts', input line {FAULT_LINE}: column \"ok\" .* is boolean .* sends bigint",
    ),
    "1,601 columns": Refused(
        "",
        r"stream 'wide', input line \d+: .*1600 columns",
        header=HEADER
        + singer(
            schema_message(
                "wide",
                {"id": {"type": "integer"}}
                | {f"c{i}": {"type": ["integer", "null"]} for i in range(1600)},
                ["id"],
            ),
            record_message("wide", {"id": 1}),
        ),
    ),
}


KNOWN_BUGS: dict[str, str] = {}
REFUSED_CASES = [
    pytest.param(
        spec,
        id=name,
        marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name])]
        if name in KNOWN_BUGS
        else [],
    )
    for name, spec in REFUSED.items()
]


@pytest.fixture
def loaded(fault_warehouse):
    """The warehouse after a good load of `parts` and `bins`, and its checksums."""
    done = fault_warehouse.run(good_content())
    assert done.returncode == 0, done.stderr[-2000:]
    return fault_warehouse, fault_warehouse.db.snapshot()


def new_bins(warehouse) -> tuple[int, str]:
    """Checksum of the header's complete `bins` stream (loaded into a reference schema)."""
    bins_only = HEADER.split('{"type": "SCHEMA", "stream": "parts"')[0]
    assert warehouse.run(bins_only, schema="reference").returncode == 0
    return Db(warehouse.db.dsn, "reference").checksum("bins")


@pytest.mark.parametrize("spec", REFUSED_CASES)
def test_refused_input_names_stream_line_column_and_changes_nothing(loaded, spec):
    warehouse, before = loaded
    done = warehouse.run(spec.header + spec.body + CLOSE, **spec.config)
    count("bad inputs")
    assert done.returncode == 1, done.stderr[-3000:]
    assert re.search(spec.error, done.stderr), done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert_same_content(before, warehouse.db.snapshot(), allow={"bins": new_bins(warehouse)})


def test_a_refused_run_commits_no_stream(loaded):
    warehouse, before = loaded
    done = warehouse.run(HEADER + REFUSED["string for boolean"].body + CLOSE)
    assert done.returncode == 1
    assert_same_content(before, warehouse.db.snapshot())
    statuses = {status for _stream, status, _rows, _error in warehouse.db.history()}
    assert "running" not in statuses


def parts_rows(warehouse, columns: str = "id, name, ok, meta") -> list[tuple]:
    return warehouse.db.query(f"SELECT {columns} FROM raw.parts ORDER BY id")


def test_unknown_message_types_are_logged_and_skipped(loaded):
    warehouse, _ = loaded
    text = HEADER + singer(
        {"type": "HEARTBEAT", "stream": "parts", "at": 1},
        {"type": "X-CUSTOM", "payload": [1, 2]},
        record_message("parts", {"id": 101}),
    ) + "\n\n" + CLOSE  # fmt: skip
    done = warehouse.run(text)
    count("bad inputs")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEARTBEAT" in done.stderr
    assert "X-CUSTOM" in done.stderr
    assert done.states == [{"run": "bad"}]
    assert parts_rows(warehouse, "id") == [(100,), (101,)]


def test_duplicate_keys_in_one_batch_and_across_batches_last_wins(loaded):
    warehouse, _ = loaded
    rows = [record_message("parts", {"id": i % 3, "name": f"v{i}"}) for i in range(10)]
    for batch_size in (1000, 4):
        done = warehouse.run(singer(schema_message("parts", PARTS, ["id"]), *rows, CLOSE.strip()),
                             batch_size_rows=batch_size)  # fmt: skip
        count("bad inputs")
        assert done.returncode == 0, done.stderr[-3000:]
        assert parts_rows(warehouse, "id, name") == [(0, "v9"), (1, "v7"), (2, "v8")]


def test_nul_characters_are_stripped_when_asked(loaded):
    warehouse, _ = loaded
    text = singer(
        schema_message("parts", PARTS, ["id"]),
        record_message("parts", {"id": 1, "name": "a\u0000b", "meta": {"k\u0000": "x\u0000y"}}),
    )
    done = warehouse.run(text, strip_nul_characters=True)
    count("bad inputs")
    assert done.returncode == 0, done.stderr[-3000:]
    assert parts_rows(warehouse, "id, name, meta") == [(1, "ab", {"k": "xy"})]


def test_schema_change_mid_stream_adds_and_widens_columns(loaded):
    warehouse, _ = loaded
    wider = {**PARTS, "name": {"type": ["string", "integer", "null"]},
             "extra": {"type": ["number", "null"]}}  # fmt: skip
    text = singer(
        schema_message("parts", PARTS, ["id"]),
        record_message("parts", {"id": 1, "name": "before"}),
        schema_message("parts", wider, ["id"]),
        record_message("parts", {"id": 2, "name": "after", "extra": 1.25}),
    )
    done = warehouse.run(text)
    count("bad inputs")
    assert done.returncode == 0, done.stderr[-3000:]
    assert parts_rows(warehouse, "id, name, extra::text") == [(1, "before", None),
                                                              (2, "after", "1.25")]  # fmt: skip


@pytest.mark.slow
def test_a_50_megabyte_text_value_lands_exactly(loaded):
    warehouse, _ = loaded
    big = ("0123456789abcdefghijklmnopqrstuvwxyzÄÖÜ€" * 1_400_000)[: 50 * 1024 * 1024 // 1]
    text = singer(
        schema_message("parts", PARTS, ["id"]),
        record_message("parts", {"id": 1, "name": big}),
        record_message("parts", {"id": 2, "name": "small"}),
    )
    done = warehouse.run(text)
    count("bad inputs")
    assert done.returncode == 0, done.stderr[-3000:]
    expected = hashlib.md5(big.encode()).hexdigest()
    assert warehouse.db.query("SELECT id, length(name), md5(name) FROM raw.parts ORDER BY id") == [
        (1, len(big), expected),
        (2, 5, hashlib.md5(b"small").hexdigest()),
    ]


def test_1600_columns_load_exactly(loaded):
    warehouse, _ = loaded
    # Short text values: 1,600 bigint values would exceed PostgreSQL's 8 kB row size instead.
    props = {"id": {"type": "integer"}} | {f"c{i}": {"type": ["string", "null"]}
                                           for i in range(1599)}  # fmt: skip
    values = {"id": 1} | {f"c{i}": str(i) for i in range(1599)}
    done = warehouse.run(
        singer(schema_message("wide", props, ["id"]), record_message("wide", values))
    )
    count("bad inputs")
    assert done.returncode == 0, done.stderr[-3000:]
    ((landed,),) = warehouse.db.query("SELECT to_jsonb(w) FROM raw.wide w")
    assert landed == values
