"""The load methods, and the choice of one per stream.

Adding a load method is one new module here and one line in METHODS.
"""

from __future__ import annotations

from collections.abc import Sequence

from target_warehouse_raw.errors import LoadError
from target_warehouse_raw.load.methods.append_only import AppendOnly
from target_warehouse_raw.load.methods.apply_changes import ApplyChanges
from target_warehouse_raw.load.methods.replace import Replace
from target_warehouse_raw.load.methods.upsert import Upsert
from target_warehouse_raw.load.stream import StreamLoad

METHODS: dict[str, type[StreamLoad]] = {
    method.name: method for method in (Replace, Upsert, AppendOnly, ApplyChanges)
}
"""`load_method` value -> the class that loads a stream that way."""

AUTO = "auto"


def choose(
    requested: str,
    *,
    stream: str,
    keys: Sequence[str],
    bookmarks: Sequence[str],
    changes: bool,
    line: int,
) -> type[StreamLoad]:
    """The class that loads one stream, decided at its SCHEMA, before anything is written.

    A stream is *partial* when its SCHEMA names bookmark properties: an incremental (or
    resumed, or change) extract holds only what changed since the last run, so replacing the
    table with it would delete every other row. `auto` replaces a complete stream and merges
    a partial one (upsert by key, append-only without a key); an explicit method that
    replaces the table is refused for a partial stream. A change stream (`changes`: the
    tap's log-based extract, see apply_changes.py) has its changes applied.
    """
    partial = bool(bookmarks)
    if requested == AUTO:
        if changes:
            method = ApplyChanges
        elif not partial:
            return Replace
        else:
            return Upsert if keys else AppendOnly
    elif requested in METHODS:
        method = METHODS[requested]
    else:
        raise LoadError(
            f"load_method '{requested}' is not one of {', '.join([AUTO, *METHODS])}",
            stream=stream,
            line=line,
        )
    if partial and method.replaces_table:
        raise LoadError(
            f"load_method '{requested}' would replace the table with a partial extract (the "
            f"stream is incremental: bookmark properties {list(bookmarks)}), deleting every "
            f"row this run did not send; nothing was loaded. Set load_method to 'auto' or "
            f"'upsert' to merge it, or reload the whole table with a full refresh (meltano "
            f"run --full-refresh)",
            stream=stream,
            line=line,
        )
    if method.needs_keys and not keys:
        raise LoadError(
            f"load_method '{method.name}' needs key properties, and this stream has none",
            stream=stream,
            line=line,
        )
    return method
