"""Records from the files a BATCH message names (the Singer SDK's BATCH message).

Supported: JSON Lines, plain or gzip, on the local file system (`file://` URLs or paths), which
is what taps write when they share a machine with the target, as under `meltano run`. Each line
is one record object; the records go through exactly the validation and conversion of RECORD
messages. A file is deleted once every record in it has been read: like a RECORD line read from
the pipe, it is then consumed, and a failed load is redone by running the tap again.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import unquote, urlparse

from target_warehouse_raw.messages.decode import split_lines

COMPRESSIONS = ("none", "gzip")


class BatchError(ValueError):
    """A BATCH message or file that cannot be read (the caller names stream and line)."""


def file_paths(encoding: Any, manifest: Any) -> tuple[str, list[str]]:
    """(compression, local paths) of a BATCH message, validated before any file is opened."""
    if not isinstance(encoding, dict):
        raise BatchError("BATCH message without an 'encoding' object")
    file_format = encoding.get("format")
    if file_format != "jsonl":
        raise BatchError(f"BATCH files in format {file_format!r} are not supported (only jsonl)")
    compression = encoding.get("compression") or "none"
    if compression not in COMPRESSIONS:
        raise BatchError(
            f"BATCH files with compression {compression!r} are not supported "
            f"(only {', '.join(COMPRESSIONS)})"
        )
    if not isinstance(manifest, list) or not all(isinstance(url, str) for url in manifest):
        raise BatchError("BATCH message without a 'manifest' list of file URLs")
    return compression, [_local_path(url) for url in manifest]


def _local_path(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return unquote(parsed.path)
    if parsed.scheme == "" and url:
        return url
    raise BatchError(f"BATCH file {url!r} is not a local file (only file:// URLs are read)")


def _open(path: str, compression: str) -> IO[bytes]:
    try:
        if compression == "gzip":
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as exc:
        raise BatchError(f"cannot open BATCH file {path}: {exc.strerror or exc}") from None


def records(path: str, compression: str) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, record JSON) of each non-blank line; deletes the file at the end."""
    file = _open(path, compression)
    try:
        for number, line in enumerate(split_lines(file.read), start=1):
            if line and not line.isspace():  # no copy of the line, unlike strip()
                yield number, line
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BatchError(f"cannot read BATCH file {path}: {exc}") from None
    finally:
        file.close()
    os.unlink(path)
