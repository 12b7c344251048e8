"""StreamVersions: what a stream's ACTIVATE_VERSION messages have said so far.

Singer taps mark a complete extract with table versions: records carry a version, and an
ACTIVATE_VERSION for it says "this version is whole". Taps send it in two ways: after the
version's records (the stream is complete; older rows can go), or, as the SDK does, once
before them (an announcement that must not empty the table before the new rows arrive). This
class tells the two apart and finds, at end of input, a version whose records came and whose
closing message never did (the tap died). It holds no database state: StreamLoad acts on
what it says.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StreamVersions:
    """The versions one stream has seen in records and in ACTIVATE_VERSION messages."""

    with_records: set[int] = field(default_factory=set)
    activations: dict[int, int] = field(default_factory=dict)
    announced: set[int] = field(default_factory=set)
    # The version of records received since the last ACTIVATE_VERSION that closed one; at
    # end of input it must have been closed (see unfinished).
    open: int | None = None

    def record(self, version: int) -> None:
        """A record of `version` arrived."""
        self.with_records.add(version)
        self.open = version

    def activate(self, version: int) -> bool:
        """ACTIVATE_VERSION `version` arrived: True when it completes the version, False
        when it only announces it (no record of it yet, and the first such message)."""
        seen = self.activations.get(version, 0)
        self.activations[version] = seen + 1
        if self.open is not None and version >= self.open:
            self.open = None  # the tap declared the stream complete
        if version not in self.with_records and seen == 0:
            self.announced.add(version)
            return False
        return True

    def unfinished(self) -> int | None:
        """At end of input: the version whose records came without a closing ACTIVATE_VERSION.

        A tap that only announces a version before its records (as the SDK does) never sends
        a closing one: for it, as for streams without versions, end of input is the end.
        """
        if self.open is None or self.open in self.announced:
            return None
        return self.open
