"""Where the tap's messages go: one binary channel to stdout, and the fast path's row writers.

The fast read path writes pre-built RECORD lines in large chunks; the SDK writes SCHEMA,
STATE and ACTIVATE_VERSION through this same writer (SingerOutput), so the order of messages
on stdout is exactly the order in which they were produced, without a flush after every
record. The rows of the fast path go to a RowWriter: RECORD lines on stdout (RecordLines), or
JSON Lines files announced by BATCH messages (BatchFiles). Both take the server-made JSON of a
chunk of rows at a time; `flush()` makes everything written so far visible to the target (the
batch writer closes its file and announces it), so a STATE message written after it covers
only records the target can already read.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import gzip
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

import msgspec
from singer_sdk.helpers._batch import BaseBatchFileEncoding, SDKBatchMessage
from singer_sdk.singerlib.encoding.base import GenericSingerWriter
from singer_sdk.singerlib.encoding.simple import Message

from tap_manufacturing.client import SourceError
from tap_manufacturing.config import BatchSettings


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


logger = logging.getLogger("tap-manufacturing")

GZIP_LEVEL = 1
"""Fastest gzip: the files live only until the target has read them."""

STALE_AFTER_SECONDS = 24 * 3600
"""A batch file of this stream older than this was left by a run that failed (the target
deletes every file it reads, within seconds or minutes): the next run removes it."""


class RowWriter(Protocol):
    """Receives the JSON text of each row (bytes, no newline), a chunk at a time."""

    def write(self, rows: list[bytes], extracted: str) -> None: ...

    def flush(self) -> None: ...

    def discard(self) -> None: ...


class RecordLines:
    """RECORD messages, built by concatenating bytes around each row's JSON."""

    def __init__(self, output: SingerOutput, stream: str, version: int | None) -> None:
        self._output = output
        self._prefix = b'{"type":"RECORD","stream":' + encode(stream) + b',"record":'
        self._version = b"" if version is None else b',"version":%d' % version

    def write(self, rows: list[bytes], extracted: str) -> None:
        """One RECORD line per row; `extracted` is the chunk's time_extracted."""
        suffix = self._version + b',"time_extracted":"' + extracted.encode() + b'"}\n'
        output = self._output
        output.write_lines(self._prefix)  # no copy of the whole chunk just to add its ends
        output.write_lines((suffix + self._prefix).join(rows))
        output.write_lines(suffix)

    def flush(self) -> None:
        """Nothing held back: every line is written as it comes."""

    def discard(self) -> None:
        """Nothing unfinished to remove."""


class BatchFiles:
    """JSON Lines files of at most `batch_size` records, each announced by a BATCH message.

    A file is written under a temporary name and renamed once complete, so a BATCH message
    only ever names a whole file. The message carries the stream's version (the SDK's BATCH
    message has the field), so a target treats its records like versioned RECORD messages
    and knows the stream is complete only at the ACTIVATE_VERSION that follows.
    """

    def __init__(
        self,
        settings: BatchSettings,
        stream: str,
        version: int | None,
        write_message: Callable[[Message], None],
    ) -> None:
        self._settings = settings
        self._stream = stream
        self._version = version
        self._write_message = write_message
        self._directory = Path(settings.directory)
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
            remove_stale_files(self._directory, settings.prefix + stream)
        except OSError as exc:
            raise batch_error(f"cannot use the batch folder {self._directory}", exc) from None
        self._run = uuid.uuid4().hex[:12]
        self._files = 0
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._rows_in_file = 0

    def write(self, rows: list[bytes], extracted: str) -> None:
        """Append rows to the current file, starting a new one every `batch_size` rows."""
        size = self._settings.batch_size
        start = 0
        while start < len(rows):
            if self._file is None:
                self._open()
            take = min(len(rows) - start, size - self._rows_in_file)
            assert self._file is not None
            try:
                self._file.write(b"\n".join(rows[start : start + take]))
                self._file.write(b"\n")
            except OSError as exc:  # disk full, folder removed, ...
                raise batch_error(f"cannot write {self._path}", exc) from None
            self._rows_in_file += take
            start += take
            if self._rows_in_file >= size:
                self.flush()

    def flush(self) -> None:
        """Close the current file (if any) and write its BATCH message."""
        if self._file is None or self._path is None:
            return
        final = self._path.with_name(self._path.name.removesuffix(".partial"))
        try:
            self._file.close()
            os.replace(self._path, final)
        except OSError as exc:
            raise batch_error(f"cannot finish {self._path}", exc) from None
        self._file, self._path, self._rows_in_file = None, None, 0
        compression = self._settings.compression
        self._write_message(
            SDKBatchMessage(
                stream=self._stream,
                encoding=BaseBatchFileEncoding(format="jsonl", compression=compression),
                manifest=[final.resolve().as_uri()],
                version=self._version,
            )
        )

    def _open(self) -> None:
        self._files += 1
        suffix = ".jsonl.gz" if self._settings.compression == "gzip" else ".jsonl"
        name = f"{self._settings.prefix}{self._stream}-{self._run}-{self._files:05d}{suffix}"
        self._path = self._directory / f"{name}.partial"
        try:
            if self._settings.compression == "gzip":
                self._file = gzip.open(self._path, "wb", compresslevel=GZIP_LEVEL)  # noqa: SIM115
            else:
                self._file = open(self._path, "wb")  # noqa: SIM115 - closed in flush()
        except OSError as exc:
            raise batch_error(f"cannot create {self._path}", exc) from None

    def discard(self) -> None:
        """After a failed read: remove the unfinished file (announced files stay the
        target's to read and delete)."""
        if self._file is not None and self._path is not None:
            with contextlib.suppress(OSError):  # the error being reported matters more
                self._file.close()
                self._path.unlink(missing_ok=True)
            self._file, self._path, self._rows_in_file = None, None, 0


def remove_stale_files(directory: Path, base: str) -> int:
    """Delete `base`'s batch files older than STALE_AFTER_SECONDS; returns how many.

    Only names this writer makes (`<base>-<12 hex>-<5+ digits>.jsonl[.gz][.partial]`) are
    touched, so other streams' files and anything else in the folder stay.
    """
    name = re.compile(re.escape(base) + r"-[0-9a-f]{12}-[0-9]{5,}\.jsonl(?:\.gz)?(?:\.partial)?")
    cutoff = time.time() - STALE_AFTER_SECONDS
    removed = 0
    for path in directory.iterdir():
        if name.fullmatch(path.name) and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        logger.info("Removed %d batch file(s) of '%s' left by an earlier run", removed, base)
    return removed


def batch_error(action: str, exc: OSError) -> SourceError:
    """A file-system failure as one clear error line (the tap exits 1, no traceback)."""
    return SourceError(f"batch_config.storage.root: {action}: {exc.strerror or exc}")
