"""STATE messages held until everything they cover is committed, then written in order.

A STATE covers the records that came before it. It is held with, per stream that had
uncommitted records then, the input line of that stream's last record; it is written once
every one of those streams has committed that line. Only the newest ready STATE is written
(each one supersedes the earlier ones), never the same text twice, never an empty one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping


class HeldStates:
    """STATE values waiting for commits, oldest first."""

    def __init__(self, write_state: Callable[[dict], None]) -> None:
        self._write_state = write_state
        self._held: list[tuple[dict, dict[str, int]]] = []
        self._last_written: str | None = None

    def __bool__(self) -> bool:
        return bool(self._held)

    def hold(self, state: dict, covers: dict[str, int]) -> None:
        """Keep `state` until each stream in `covers` has committed up to its line."""
        self._held.append((state, covers))

    def release(self, committed: Mapping[str, int]) -> None:
        """Write the newest held STATE whose streams have all committed what it covers."""
        ready = None
        while self._held:
            state, covers = self._held[0]
            if any(committed[name] < last for name, last in covers.items()):
                break
            ready = state
            self._held.pop(0)
        if ready is None:
            return
        text = json.dumps(ready, separators=(",", ":"))
        if text != self._last_written:
            self._write_state(ready)
            self._last_written = text
