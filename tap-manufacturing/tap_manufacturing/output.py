"""One binary channel to stdout for every Singer message the tap writes.

The fast read path writes pre-built RECORD lines in large chunks; the SDK writes SCHEMA,
STATE and ACTIVATE_VERSION through this same writer, so the order of messages on stdout is
exactly the order in which they were produced, without a flush after every record.
"""

from __future__ import annotations

import datetime
import decimal
import sys
from typing import Any

import msgspec
from singer_sdk.singerlib.encoding.base import GenericSingerWriter
from singer_sdk.singerlib.encoding.simple import Message


def _encode_other(value: Any) -> Any:
    """Values msgspec does not know: datetimes as ISO 8601, anything else as text."""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)


_ENCODER = msgspec.json.Encoder(enc_hook=_encode_other, decimal_format="number")
DECODER = msgspec.json.Decoder(float_hook=decimal.Decimal)
"""Decodes server-made row JSON for the SDK path, keeping every digit (floats as Decimal)."""


def encode(value: object) -> bytes:
    """Compact JSON bytes for `value` (Decimal as exact numbers)."""
    return _ENCODER.encode(value)


def _stdout_binary() -> Any:
    """The current stdout's binary layer (stdout may be redirected, e.g. in tests)."""
    stdout = sys.stdout
    stdout.flush()
    return getattr(stdout, "buffer", None)


class SingerOutput(GenericSingerWriter[bytes, Message]):
    """Writes Singer messages to stdout; also accepts ready-made message bytes."""

    def serialize_message(self, message: Message) -> bytes:
        """One JSON line for `message`."""
        return _ENCODER.encode(message.to_dict()) + b"\n"

    def write_message(self, message: Message) -> None:
        """Write one message and flush: these are SCHEMA/STATE/ACTIVATE_VERSION or slow-path."""
        self.write_lines(self.format_message(message), flush=True)

    def write_lines(self, data: bytes, *, flush: bool = False) -> None:
        """Write whole message lines (already newline-terminated)."""
        binary = _stdout_binary()
        if binary is None:
            sys.stdout.write(data.decode("utf-8"))
            if flush:
                sys.stdout.flush()
            return
        binary.write(data)
        if flush:
            binary.flush()
