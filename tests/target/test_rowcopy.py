"""The compiled RECORD converter (_rowcopy.c) against the Python path it stands in for.

The C converter is only an accelerator: for every line it takes, it must give exactly the row
(and version) the Python single-pass path gives, and it must refuse (None) every line that
path refuses, so that the exact path still names the problem. These tests hold it to that on
generated schemas and lines, and on hand-picked hard cases.
"""

from __future__ import annotations

import json
import shutil
import sysconfig
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from target_warehouse_raw.copy_text import native
from target_warehouse_raw.copy_text.encoder import CopyRowEncoder
from target_warehouse_raw.copy_text.values import ConversionError
from target_warehouse_raw.schema.columns import Column

STREAM = "s"


def c_compiler() -> str | None:
    """The C compiler Python's build tools would use, if it is installed."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler)


needs_converter = pytest.mark.skipif(
    native._rowcopy is None, reason="no compiled converter (no C compiler at install)"
)


def encoder_for(columns: list[Column], params: dict[str, str]) -> CopyRowEncoder:
    """The stream's encoder, as a stream load builds it."""
    return CopyRowEncoder(columns, params, stream=STREAM, strip_nul_characters=False)


def python_path(encoder: CopyRowEncoder, line: bytes) -> tuple[bytes, int | None] | None:
    """What the encoder's typed Python line path makes of a line (None: it refuses it)."""
    try:
        message = encoder.typed.decode_line(line)
    except (msgspec.DecodeError, UnicodeError):
        return None
    if message.type != "RECORD" or message.stream != STREAM:
        return None
    fmt = encoder.typed.format_plain if b"\\" not in line else encoder.typed.format_escaped
    try:
        row = fmt(message.record, 1, message.version, message.time_extracted, "now")
    except (KeyError, ConversionError, UnicodeError):
        return None
    return row, message.version


def column(prop: str, kind: str, types: list[str] | None, **flags: bool) -> Column:
    return Column(
        name=prop,
        prop=prop,
        sql_type="text",
        kind=kind,
        json_types=None if types is None else frozenset(types),
        **flags,
    )


def line(record: Any, **envelope: Any) -> bytes:
    message = {"type": "RECORD", "stream": STREAM, "record": record, **envelope}
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


# A table with one column of every kind the converter takes.
WIDE = [
    column("id", "int8", ["number"], key=True, required=True),
    column("name", "text", ["string", "null"]),
    column("qty", "int4", ["number", "null"]),
    column("ok", "boolean", ["boolean", "null"]),
    column("amount", "text", ["number", "string", "null"]),
    column("doc", "json", None),
    column("tags", "array", ["array", "null"]),
    column("flag", "boolean", ["boolean", "string", "null"]),
    column("any", "text", None),
    column("list", "array", None),
]


def test_the_compiled_converter_is_built_and_used_for_common_records():
    # Where a C compiler is installed, the install builds the C module, and an ordinary
    # record of every column kind goes through it.
    if c_compiler() is None and native._rowcopy is None:
        pytest.skip("no C compiler: the target runs its Python path alone")
    assert native._rowcopy is not None, "a C compiler is installed, yet the converter is not built"
    encoder = encoder_for(WIDE, {})
    assert encoder.native is not None
    text = line(
        {"id": 7, "name": "pen", "qty": 3, "ok": True, "amount": 12.50, "doc": {"a": [1]},
         "tags": ["x", None], "flag": "yes", "any": {"k": "v"}},
        version=42, time_extracted="2024-01-01T00:00:00+00:00",
    )  # fmt: skip
    converted = encoder.native.convert(text, STREAM.encode())
    assert converted == (b'7\tpen\t3\tt\t12.5\t{"a":[1]}\t{"x",NULL}\tyes\t{"k":"v"}\t\\N\n', 42)
    assert converted == python_path(encoder, text)


HARD_LINES = [
    # escapes in strings, COPY escaping of backslash, tab, newline, carriage return
    line({"id": 1, "name": 'a\tb\nc\rd\\e"f/\u00e9\U0001f600\b\f'}),
    json.dumps({"type": "RECORD", "stream": STREAM, "record": {"id": 1, "name": "é😀"}}).encode(),
    # arrays: quotes and backslashes in elements, nesting, booleans, integers, empty
    line({"id": 2, "tags": ['q"uote', "back\\slash", "tab\t", None, True, -5, [], ["n"]]}),
    line({"id": 3, "tags": []}),
    line({"id": 4, "list": "{a,b}", "doc": "just text", "any": [1, "two"]}),
    line({"id": 5, "list": {"k": 1}, "any": True}),
    # numbers: big integers, minus zero, exponents kept as written
    line({"id": 10**30, "qty": 0, "amount": -1.5e-7}),
    b'{"type":"RECORD","stream":"s","record":{"id":-0,"amount":1E+2,"any":1e400}}',
    # whitespace everywhere
    b' { "type" : "RECORD" , "stream" : "s" , '
    b'"record" : { "id" : 5 , "doc" : { "a" :\t[ 1 ,\n 2 ] } } } \r',
    # nulls, missing optional columns, unknown keys (validated, ignored)
    line({"id": 6, "name": None, "doc": None, "tags": None, "extra": {"x": [1, {"y": None}]}}),
    line({"id": 7}, version=None, time_extracted=None, other=[1, 2]),
    # jsonb text keeps its escapes (doubled for COPY)
    line({"id": 8, "doc": {"s": 'a"b\\c\nd'}}),
]


@needs_converter
@pytest.mark.parametrize("text", HARD_LINES)
def test_hard_lines_convert_exactly_as_the_python_path(text):
    encoder = encoder_for(WIDE, {})
    expected = python_path(encoder, text)
    assert expected is not None
    assert encoder.native.convert(text, STREAM.encode()) == expected


REFUSED_LINES = [
    line({"id": 1, "name": "nul \u0000"}),  # NUL: strip_nul_characters decides
    b'{"type":"RECORD","stream":"s","record":{"id":1,"name":"\\ud800"}}',  # lone surrogate
    b'{"type":"RECORD","stream":"s","record":{"id":1,"name":"\xff"}}',  # invalid UTF-8
    b'{"type":"RECORD","stream":"s","record":{"id":1,"name":"a\tb"}}',  # raw control char
    b'{"type":"RECORD","stream":"s","record":{"id":1,"id":2}}',  # duplicate key
    b'{"type":"RECORD","stream":"s","stream":"s","record":{"id":1}}',  # duplicate envelope key
    b'{"type":"RECORD","stream":"s","record":{"\\u0069d":1}}',  # escaped key
    b'{"type":"RECORD","stream":"s","record":{"id":1}} x',  # trailing text
    b'{"type":"RECORD","stream":"s","record":{"id":1}',  # truncated
    b'{"type":"RECORD","stream":"other","record":{"id":1}}',  # another stream
    b'{"type":"STATE","stream":"s","record":{"id":1}}',  # not a RECORD
    b'{"type":"RECORD","stream":"s"}',  # no record
    b'{"type":"RECORD","stream":"s","record":[1]}',  # record not an object
    line({"name": "no id"}),  # a required column missing
    line({"id": None}),  # null in a key column
    line({"id": 1.5}),  # not an integer
    line({"id": "1"}),  # a string for an integer column
    line({"id": 1, "ok": "yes"}),  # a string for a boolean column
    line({"id": 1, "tags": 5}),  # a type the column does not allow
    line({"id": 1, "tags": [1.5]}),  # a decimal inside an array: Python's text may differ
    line({"id": 1, "tags": [{"k": 1}]}),  # an object inside an array
    line({"id": 1}, version=1.5),
    line({"id": 1}, version=10**20),
    line({"id": 1}, time_extracted=5),
    b'{"type":"RECORD","stream":"s","record":{"id":01}}',  # invalid number
    b'{"type":"RECORD","stream":"s","record":{"id":1,"doc":[1,]}}',  # invalid nested JSON
]


@needs_converter
@pytest.mark.parametrize("text", REFUSED_LINES)
def test_unusual_lines_are_left_to_the_python_path(text):
    encoder = encoder_for(WIDE, {})
    assert encoder.native.convert(text, STREAM.encode()) is None


@needs_converter
def test_no_converter_where_it_cannot_match_the_python_path():
    # base64 bytea needs decoding, metadata columns need the load's times: Python does both.
    assert encoder_for([column("b", "bytea64", ["string"])], {}).native is None
    metadata = Column("_sdc_batched_at", "", "timestamptz", "text", None, metadata=True)
    assert encoder_for([WIDE[0], metadata], {}).native is None


# --- generated schemas and lines ---------------------------------------------------------

KINDS = ["text", "int4", "int8", "boolean", "json", "array"]
TYPE_SETS = [
    None,
    ["string"],
    ["string", "null"],
    ["number"],
    ["number", "null"],
    ["boolean"],
    ["boolean", "null"],
    ["number", "string", "null"],
    ["array", "null"],
    ["object", "null"],
    ["object", "array", "string", "number", "boolean", "null"],
]
PROPS = ["id", "a", "B", "é", "with space", "x" * 40]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)


def nested(values: st.SearchStrategy) -> st.SearchStrategy:
    """`values`, or lists and objects of them (one level deeper)."""
    keys = st.text(max_size=5)
    return values | st.lists(values, max_size=4) | st.dictionaries(keys, values, max_size=3)


json_values = nested(nested(scalars))  # two levels of nesting are enough here


@st.composite
def tables(draw: st.DrawFn) -> list[Column]:
    props = draw(st.lists(st.sampled_from(PROPS), min_size=1, max_size=5, unique=True))
    return [
        column(
            prop,
            draw(st.sampled_from(KINDS)),
            draw(st.sampled_from(TYPE_SETS)),
            required=draw(st.booleans()),
            key=draw(st.booleans()),
        )
        for prop in props
    ]


@st.composite
def lines_for(draw: st.DrawFn, columns: list[Column]) -> bytes:
    keys = [c.prop for c in columns] + ["extra"]
    record = draw(st.dictionaries(st.sampled_from(keys), json_values, max_size=len(keys)))
    envelope: dict[str, Any] = {"type": "RECORD", "stream": STREAM, "record": record}
    if draw(st.booleans()):
        envelope["version"] = draw(st.none() | st.integers(-(2**70), 2**70) | st.floats(0, 9))
    if draw(st.booleans()):
        envelope["time_extracted"] = draw(st.none() | st.text(max_size=5) | st.integers())
    compact = draw(st.booleans())
    text = json.dumps(
        envelope,
        separators=(",", ":") if compact else (", ", ": "),
        ensure_ascii=draw(st.booleans()),
        allow_nan=False,
    )
    return text.encode("utf-8", "surrogatepass")  # lone surrogates as invalid UTF-8, too


@needs_converter
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_lines_convert_exactly_as_the_python_path_or_not_at_all(data):
    columns = data.draw(tables())
    encoder = encoder_for(columns, {})
    assume(encoder.native is not None)
    for _ in range(5):
        text = data.draw(lines_for(columns))
        converted = encoder.native.convert(text, STREAM.encode())
        if converted is not None:
            assert converted == python_path(encoder, text), text


def python_encoder(columns: list[Column]) -> CopyRowEncoder:
    """An encoder with the compiled converter switched off: the reference."""
    encoder = encoder_for(columns, {})
    encoder.native = None
    return encoder


@needs_converter
@pytest.mark.parametrize("text", HARD_LINES)
def test_bare_records_convert_exactly_as_the_python_path(text):
    # BATCH file lines and the records of the general RECORD path are bare record objects.
    raw = bytes(msgspec.json.decode(text, type=dict[str, msgspec.Raw])["record"])
    encoder = encoder_for(WIDE, {})
    row = encoder.native.convert_record(raw)
    assert row is not None
    assert row == python_encoder(WIDE).record(raw, 1, None, None, "now")
    assert encoder.record(raw, 1, None, None, "now") == row


@needs_converter
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_records_convert_exactly_as_the_python_path_or_not_at_all(data):
    columns = data.draw(tables())
    encoder = encoder_for(columns, {})
    assume(encoder.native is not None)
    reference = python_encoder(columns)
    for _ in range(5):
        text = data.draw(lines_for(columns))
        try:
            raw = bytes(msgspec.json.decode(text, type=dict[str, msgspec.Raw])["record"])
        except (msgspec.DecodeError, UnicodeError):
            continue
        row = encoder.native.convert_record(raw)
        if row is not None:
            assert row == reference.record(raw, 1, None, None, "now"), raw


@needs_converter
@settings(max_examples=500, deadline=None)
@given(
    base=st.sampled_from(HARD_LINES),
    cut=st.integers(min_value=0, max_value=400),
    position=st.integers(min_value=0, max_value=400),
    byte=st.integers(min_value=0, max_value=255),
)
def test_damaged_lines_are_refused_or_converted_exactly(base, cut, position, byte):
    # Truncated lines and lines with one byte changed: the converter never reads past the
    # line, never crashes, and whatever it still converts, it converts as Python would.
    encoder = encoder_for(WIDE, {})
    damaged = bytearray(base[: max(1, len(base) - cut % len(base))])
    damaged[position % len(damaged)] = byte
    text = bytes(damaged)
    converted = encoder.native.convert(text, STREAM.encode())
    if converted is not None:
        assert converted == python_path(encoder, text), text
