"""What a run costs besides wall time, read from /proc while it runs.

- Server CPU: the CPU seconds of the server processes serving the bench's databases (the
  tap's source sessions and the target's warehouse sessions; PostgreSQL names each backend
  after its database in the process title). The server's shared helpers (checkpointer, WAL
  writer) are left out: on a shared machine they work for everyone. A backend's CPU is read
  every 50 ms, so what it spends in its last 50 ms before exiting is missed; the sessions end
  with a COMMIT or a close, which costs little. Needs the server on this machine (n/a else).
- Peak RSS of the plugins under `meltano run`: Meltano, not the bench, starts them, so their
  high-water mark (VmHWM) is read every 50 ms; the last reading before exit is reported
  (the tap's discovery process, which Meltano starts before the sync, is left out). In the
  direct pipe the bench starts them itself and gets the exact figure from wait4.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

INTERVAL_S = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PLUGINS = ("tap-manufacturing", "target-warehouse-raw")


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, from every thread's children list (Meltano spawns from
    several threads)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _peak_rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


class RunProbe:
    """Samples server backends and a client process tree in a thread while a run lasts.

    Use as a context manager around the run; call `watch_client(pid)` once the client's root
    process (meltano) exists. Afterwards `server_cpu_s` and `plugin_rss_kib` hold the result.
    """

    def __init__(self, postmaster_pid: int | None, databases: list[str]) -> None:
        self._postmaster = postmaster_pid
        self._titles = [f" {database} " for database in databases]
        self._client: int | None = None
        self._first: dict[int, int] = {}  # backend pid -> CPU ticks when first seen
        self._last: dict[int, int] = {}
        self._backends: set[int] = set()  # pids seen serving a bench database
        self.plugin_rss_kib: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-probe", daemon=True)

    @property
    def server_cpu_s(self) -> float | None:
        """CPU seconds the bench's backends used during the run (None: not measurable)."""
        if self._postmaster is None:
            return None
        ticks = sum(self._last[pid] - self._first[pid] for pid in self._last)
        return ticks / CLOCK_TICKS

    def watch_client(self, pid: int) -> None:
        """Also follow this process's descendants and record the plugins' peak RSS."""
        self._client = pid

    def __enter__(self) -> RunProbe:
        # Backends alive before the run count from their CPU now; new ones from zero.
        self._sample_server(baseline=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample_server(baseline=False)

    def _loop(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            self._sample_server(baseline=False)
            self._sample_client()

    def _sample_server(self, *, baseline: bool) -> None:
        if self._postmaster is None:
            return
        for pid in _children(self._postmaster):
            if pid not in self._backends:
                # Not cached when it does not match: a backend still starting up has no
                # database in its title yet.
                title = _cmdline(pid) + " "
                if not any(name in title for name in self._titles):
                    continue
                self._backends.add(pid)
            ticks = _cpu_ticks(pid)
            if ticks is None:
                continue
            self._first.setdefault(pid, ticks if baseline else 0)
            self._last[pid] = ticks

    def _sample_client(self) -> None:
        if self._client is None:
            return
        pending = _children(self._client)  # not the client itself: its command names both
        while pending:
            pid = pending.pop()
            pending.extend(_children(pid))
            command = _cmdline(pid)
            plugin = next((name for name in PLUGINS if name in command), None)
            if plugin is None or " --discover " in command + " ":
                continue  # discovery is a process of its own; the figure is the sync's
            rss = _peak_rss_kib(pid)
            if rss is not None:
                self.plugin_rss_kib[plugin] = max(rss, self.plugin_rss_kib.get(plugin, 0))
