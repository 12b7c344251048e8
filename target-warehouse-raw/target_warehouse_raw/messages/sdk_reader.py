"""The SDK reader interface, backed by our fast line decoder (decode.py).

Callbacks receive `(line number, Message)` rather than a dict, so the record JSON is never
parsed as a Python dict. At the end of input `on_end` commits everything. Any failure (bad
input, database error, signal), including one during `on_end`, first runs `on_failure`, which
rolls every open transaction back, then propagates.
"""

from __future__ import annotations

import logging
import sys
import typing as t
from collections import Counter
from collections.abc import Callable

from singer_sdk.singerlib.encoding import GenericSingerReader, SingerMessageType

from target_warehouse_raw.errors import LoadError
from target_warehouse_raw.messages.decode import (
    RECORD_PREFIX,
    MalformedLineError,
    decode_message,
    read_lines,
)

logger = logging.getLogger("target-warehouse-raw")

_TYPES = {
    "SCHEMA": SingerMessageType.SCHEMA,
    "RECORD": SingerMessageType.RECORD,
    "STATE": SingerMessageType.STATE,
    "ACTIVATE_VERSION": SingerMessageType.ACTIVATE_VERSION,
    "BATCH": SingerMessageType.BATCH,
}


class WarehouseRawReader(GenericSingerReader[str]):
    """Reads Singer lines with msgspec and dispatches them with their line numbers."""

    on_failure: Callable[[BaseException], BaseException | None] | None = None
    on_end: Callable[[], None] | None = None
    # RECORD lines by stream name (as its JSON bytes): a stream load's single-pass path, which
    # returns False, having changed nothing, for any line it does not take (see
    # StreamLoad.add_line); the line is then decoded and dispatched as usual.
    fast_records: dict[bytes, Callable[[int, bytes], bool]] | None = None

    @property
    def default_input(self) -> t.IO[str]:  # pragma: no cover - reader.py reads stdin's bytes
        """Standard input (reader.read_lines uses its binary buffer)."""
        return sys.stdin

    def deserialize_json(self, line: str) -> dict:  # pragma: no cover - not used
        """Unused: lines are decoded by reader.decode_message."""
        raise NotImplementedError

    def process_lines(
        self, file_input: t.IO[str] | None, callbacks: dict[str, Callable]
    ) -> Counter[str]:
        """Dispatch every message; on any failure call on_failure, then re-raise."""
        counter: Counter[str] = Counter()
        record = callbacks[SingerMessageType.RECORD]
        fast = self.fast_records if self.fast_records is not None else {}
        start = len(RECORD_PREFIX)
        records = 0
        try:
            for number, line in read_lines(file_input):
                if line.startswith(RECORD_PREFIX):
                    add = fast.get(line[start : line.find(b'"', start)])
                    if add is not None and add(number, line):
                        records += 1
                        continue
                message = decode_message(number, line)
                if message is None:
                    continue
                kind = message.type
                if kind == "RECORD":
                    record((number, message))
                    records += 1
                    continue
                handler = _TYPES.get(kind)
                if handler is None:
                    logger.warning("Input line %d: unknown message type %r ignored", number, kind)
                    continue
                callbacks[handler]((number, message))
                counter[handler] += 1
            # End of input, still inside this try: a SIGTERM/SIGINT that arrived with the end
            # of input is raised here (at this call), so it rolls back like any other.
            if self.on_end is not None:
                self.on_end()
            counter["RECORD"] = records

        except MalformedLineError as exc:
            error = self._fail(LoadError(exc.problem, line=exc.line_number))
            raise error from None
        except BaseException as exc:
            error = self._fail(exc)
            if error is exc:
                raise
            raise error from None
        return counter

    def _fail(self, exc: BaseException) -> BaseException:
        """Roll back; returns the error to report (an earlier one found meanwhile, or exc)."""
        if self.on_failure is None:
            return exc
        return self.on_failure(exc) or exc
