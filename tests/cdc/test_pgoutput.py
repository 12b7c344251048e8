"""The pgoutput decoder, on hand-built messages of protocol version 1 (no database)."""

from __future__ import annotations

import datetime
import struct

import pytest

from tap_manufacturing.logical import pgoutput
from tap_manufacturing.logical.pgoutput import UNCHANGED, ProtocolError, decode

UTC = datetime.timezone.utc
# 2024-01-02 03:04:05.123456 UTC in microseconds since 2000-01-01 UTC.
TIME = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
MICROS = (TIME - pgoutput.POSTGRES_EPOCH) // datetime.timedelta(microseconds=1)


def _string(text: str) -> bytes:
    return text.encode() + b"\0"


def _tuple(*values: object) -> bytes:
    data = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            data += b"n"
        elif value is UNCHANGED:
            data += b"u"
        else:
            raw = str(value).encode()
            data += b"t" + struct.pack(">i", len(raw)) + raw
    return data


def test_begin_and_commit():
    begin = decode(b"B" + struct.pack(">QqI", 0x1_0000_0010, MICROS, 4242))
    assert begin == pgoutput.Begin(0x1_0000_0010, TIME, 4242)
    commit = decode(b"C" + struct.pack(">bQQq", 0, 0x10, 0x38, MICROS))
    assert commit == pgoutput.Commit(0x10, 0x38, TIME)


def test_relation_with_key_columns_and_pg_catalog_namespace():
    data = (
        b"R" + struct.pack(">I", 16385) + _string("") + _string("refills production")
        + b"d" + struct.pack(">h", 2)
        + b"\x01" + _string("id") + struct.pack(">Ii", 20, -1)
        + b"\x00" + _string("diameter_mm") + struct.pack(">Ii", 1700, 655368)
    )  # fmt: skip
    relation = decode(data)
    assert relation == pgoutput.Relation(
        16385,
        "pg_catalog",
        "refills production",
        "d",
        (
            pgoutput.RelationColumn("id", 20, -1, True),
            pgoutput.RelationColumn("diameter_mm", 1700, 655368, False),
        ),
    )


def test_insert_update_delete_tuples():
    insert = decode(b"I" + struct.pack(">I", 7) + b"N" + _tuple("1", None, "é 'x'"))
    assert insert == pgoutput.Insert(7, ("1", None, "é 'x'"))
    # An update without the old row, one with the old key, one with the whole old row.
    plain = decode(b"U" + struct.pack(">I", 7) + b"N" + _tuple("1", UNCHANGED, "x"))
    assert plain == pgoutput.Update(7, None, None, ("1", UNCHANGED, "x"))
    keyed = decode(b"U" + struct.pack(">I", 7) + b"K" + _tuple("1", None) + b"N" + _tuple("2", "y"))
    assert keyed == pgoutput.Update(7, "K", ("1", None), ("2", "y"))
    full = decode(b"U" + struct.pack(">I", 7) + b"O" + _tuple("1", "a") + b"N" + _tuple("1", "b"))
    assert full.old_kind == "O"
    assert full.old == ("1", "a")
    delete = decode(b"D" + struct.pack(">I", 7) + b"K" + _tuple("3", None))
    assert delete == pgoutput.Delete(7, "K", ("3", None))


def test_truncate_origin_type_and_message():
    truncate = decode(b"T" + struct.pack(">ibII", 2, 3, 7, 8))
    assert truncate == pgoutput.Truncate((7, 8), cascade=True, restart_identity=True)
    origin = decode(b"O" + struct.pack(">Q", 99) + _string("upstream"))
    assert origin == pgoutput.Origin(99, "upstream")
    kind = decode(b"Y" + struct.pack(">I", 16400) + _string("public") + _string("mood"))
    assert kind == pgoutput.TypeInfo(16400, "public", "mood")
    message = decode(
        b"M" + struct.pack(">bQ", 1, 5) + _string("app") + struct.pack(">i", 2) + b"hi"
    )
    assert message == pgoutput.LogicalMessage(True, 5, "app", b"hi")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "empty message"),
        (b"Z123", "unknown pgoutput message type 'Z'"),
        (b"B" + b"\0" * 10, "message ends after 11 bytes, 17 needed"),
        (b"I" + struct.pack(">I", 7) + b"X", "Insert message: expected 'N', got 'X'"),
        (b"D" + struct.pack(">I", 7) + b"N" + _tuple("1"), "expected 'K' or 'O', got 'N'"),
        (b"I" + struct.pack(">I", 7) + b"N" + struct.pack(">h", 1) + b"b", "column kind 'b'"),
        (b"O" + struct.pack(">Q", 1) + b"no terminator", "terminating zero byte"),
        (b"C" + struct.pack(">bQQq", 0, 1, 2, 3) + b"!", "1 unexpected trailing bytes"),
    ],
)
def test_damaged_messages_are_refused_clearly(data, error):
    with pytest.raises(ProtocolError, match=error):
        decode(data)


def test_lsn_text_form():
    assert pgoutput.format_lsn(0x1_6B37_48) == "0/16B3748"
    assert pgoutput.format_lsn((0x2A << 32) | 0xFF) == "2A/FF"
    assert pgoutput.parse_lsn("2A/FF") == (0x2A << 32) | 0xFF
