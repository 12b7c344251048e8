"""Decode the messages of PostgreSQL's built-in `pgoutput` logical decoding plugin.

Written by hand because psycopg2 delivers the replication stream as raw bytes and no
well-kept Python library decodes pgoutput: the format is small and stable (PostgreSQL docs,
"Logical Replication Message Formats"). We ask for protocol version 1 without streaming of
in-progress transactions, so the server sends only committed transactions, whole and in
commit order: Begin, then Relation/Type/Insert/Update/Delete/Truncate messages, then Commit.
Values arrive in text format: the type's output function's text, or None for NULL, or
UNCHANGED for a TOASTed value an UPDATE did not touch (the server did not send it).

Pure: no database, no I/O. Every message type of protocol 1 is decoded; an unknown one is an
error rather than something silently skipped.
"""

from __future__ import annotations

import datetime
import struct
from dataclasses import dataclass
from typing import Final

POSTGRES_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)


class _Unchanged:
    """Marker for an unchanged TOASTed column ('u' in TupleData): the value was not sent."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()

Value = str | None | _Unchanged
"""One column of a tuple: its text, None (SQL NULL) or UNCHANGED."""


class ProtocolError(ValueError):
    """The bytes are not a pgoutput protocol 1 message this decoder understands."""


@dataclass(frozen=True)
class Begin:
    """A transaction starts; its changes follow, then its Commit."""

    final_lsn: int
    commit_time: datetime.datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    """A transaction ends. `end_lsn` is the position just after its commit record."""

    commit_lsn: int
    end_lsn: int
    commit_time: datetime.datetime


@dataclass(frozen=True)
class Origin:
    """The transaction came from another server through replication origin `name`."""

    origin_lsn: int
    name: str


@dataclass(frozen=True)
class RelationColumn:
    """One column as the Relation message describes it."""

    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True)
class Relation:
    """A table's description, sent before its first change and again after it changes."""

    oid: int
    namespace: str
    name: str
    replica_identity: str
    columns: tuple[RelationColumn, ...]


@dataclass(frozen=True)
class TypeInfo:
    """A data type's name (sent for types outside pg_catalog); informational only."""

    oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class Insert:
    """A new row."""

    relation_oid: int
    new: tuple[Value, ...]


@dataclass(frozen=True)
class Update:
    """A changed row: `old` is the old key ('K') or the whole old row ('O') when sent."""

    relation_oid: int
    old_kind: str | None
    old: tuple[Value, ...] | None
    new: tuple[Value, ...]


@dataclass(frozen=True)
class Delete:
    """A deleted row: its old key ('K') or whole old row ('O')."""

    relation_oid: int
    old_kind: str
    old: tuple[Value, ...]


@dataclass(frozen=True)
class Truncate:
    """TRUNCATE of one or more tables."""

    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class LogicalMessage:
    """A message written with pg_logical_emit_message (sent only when asked for)."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Message = (
    Begin | Commit | Origin | Relation | TypeInfo | Insert | Update | Delete | Truncate
    | LogicalMessage
)  # fmt: skip


def timestamp(microseconds: int) -> datetime.datetime:
    """A pgoutput timestamp (microseconds since 2000-01-01 UTC) as an aware datetime."""
    return POSTGRES_EPOCH + datetime.timedelta(microseconds=microseconds)


def format_lsn(lsn: int) -> str:
    """An LSN in PostgreSQL's text form, e.g. `0/16B3748`."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """PostgreSQL's text form of an LSN (`0/16B3748`) as an integer."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


class _Reader:
    """Big-endian reads from one message, with a clear error when it ends too soon."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            msg = f"message ends after {len(self.data)} bytes, {end} needed"
            raise ProtocolError(msg)
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def byte(self) -> str:
        return self._take(1).decode("ascii")

    def int8(self) -> int:
        return self._take(1)[0]

    def int16(self) -> int:
        return int(struct.unpack(">h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self._take(4))[0])

    def uint32(self) -> int:
        return int(struct.unpack(">I", self._take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self._take(8))[0])

    def uint64(self) -> int:
        return int(struct.unpack(">Q", self._take(8))[0])

    def string(self) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            msg = "string without its terminating zero byte"
            raise ProtocolError(msg)
        text = self.data[self.offset : end].decode("utf-8")
        self.offset = end + 1
        return text

    def tuple_data(self) -> tuple[Value, ...]:
        """One row's columns. The hot loop of a change stream: kept flat (no helper calls
        per column), every read bounds-checked by struct/indexing and reported as a
        ProtocolError."""
        data = self.data
        offset = self.offset
        values: list[Value] = []
        append = values.append
        try:
            (count,) = _INT16.unpack_from(data, offset)
            offset += 2
            for _ in range(count):
                kind = data[offset]
                offset += 1
                if kind == 0x74:  # 't': Int32 length, then the text
                    (length,) = _INT32.unpack_from(data, offset)
                    offset += 4
                    end = offset + length
                    if end > len(data):
                        msg = f"message ends after {len(data)} bytes, {end} needed"
                        raise ProtocolError(msg)
                    append(data[offset:end].decode("utf-8"))
                    offset = end
                elif kind == 0x6E:  # 'n'
                    append(None)
                elif kind == 0x75:  # 'u'
                    append(UNCHANGED)
                else:  # 'b' (binary) is sent only when asked for with the `binary` option
                    msg = f"unexpected column kind {chr(kind)!r} in tuple data"
                    raise ProtocolError(msg)
        except (struct.error, IndexError):
            msg = f"tuple data ends early (message of {len(data)} bytes)"
            raise ProtocolError(msg) from None
        self.offset = offset
        return tuple(values)

    def done(self, what: str) -> None:
        if self.offset != len(self.data):
            msg = f"{what} message has {len(self.data) - self.offset} unexpected trailing bytes"
            raise ProtocolError(msg)


def decode(data: bytes) -> Message:
    """One pgoutput message (the payload of one XLogData message) as a dataclass."""
    if not data:
        msg = "empty message"
        raise ProtocolError(msg)
    reader = _Reader(bytes(data))
    kind = reader.byte()
    decoder = _DECODERS.get(kind)
    if decoder is None:
        msg = f"unknown pgoutput message type {kind!r}"
        raise ProtocolError(msg)
    message = decoder(reader)
    reader.done(type(message).__name__)
    return message


def _begin(reader: _Reader) -> Begin:
    return Begin(reader.uint64(), timestamp(reader.int64()), reader.uint32())


def _commit(reader: _Reader) -> Commit:
    reader.int8()  # flags, currently unused
    return Commit(reader.uint64(), reader.uint64(), timestamp(reader.int64()))


def _origin(reader: _Reader) -> Origin:
    return Origin(reader.uint64(), reader.string())


def _relation(reader: _Reader) -> Relation:
    oid = reader.uint32()
    namespace = reader.string() or "pg_catalog"  # empty means pg_catalog
    name = reader.string()
    identity = chr(reader.int8())
    columns = []
    for _ in range(reader.int16()):
        flags = reader.int8()
        columns.append(
            RelationColumn(reader.string(), reader.uint32(), reader.int32(), bool(flags & 1))
        )
    return Relation(oid, namespace, name, identity, tuple(columns))


def _type(reader: _Reader) -> TypeInfo:
    return TypeInfo(reader.uint32(), reader.string(), reader.string())


def _insert(reader: _Reader) -> Insert:
    oid = reader.uint32()
    marker = reader.byte()
    if marker != "N":
        msg = f"Insert message: expected 'N', got {marker!r}"
        raise ProtocolError(msg)
    return Insert(oid, reader.tuple_data())


def _update(reader: _Reader) -> Update:
    oid = reader.uint32()
    marker = reader.byte()
    old_kind = None
    old = None
    if marker in ("K", "O"):
        old_kind, old = marker, reader.tuple_data()
        marker = reader.byte()
    if marker != "N":
        msg = f"Update message: expected 'N', got {marker!r}"
        raise ProtocolError(msg)
    return Update(oid, old_kind, old, reader.tuple_data())


def _delete(reader: _Reader) -> Delete:
    oid = reader.uint32()
    marker = reader.byte()
    if marker not in ("K", "O"):
        msg = f"Delete message: expected 'K' or 'O', got {marker!r}"
        raise ProtocolError(msg)
    return Delete(oid, marker, reader.tuple_data())


def _truncate(reader: _Reader) -> Truncate:
    count = reader.int32()
    options = reader.int8()
    oids = tuple(reader.uint32() for _ in range(count))
    return Truncate(oids, bool(options & 1), bool(options & 2))


def _logical_message(reader: _Reader) -> LogicalMessage:
    flags = reader.int8()
    lsn = reader.uint64()
    prefix = reader.string()
    content = reader._take(reader.int32())
    return LogicalMessage(bool(flags & 1), lsn, prefix, content)


_DECODERS = {
    "B": _begin,
    "C": _commit,
    "O": _origin,
    "R": _relation,
    "Y": _type,
    "I": _insert,
    "U": _update,
    "D": _delete,
    "T": _truncate,
    "M": _logical_message,
}
