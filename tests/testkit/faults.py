"""Fault-injection helpers: a warehouse with checksums, gates that hold a load in one phase,
the real target as a process, the real `meltano` on fresh sources, and the session's figures.

How a phase is made observable (and held) without touching product code:
- *copy/insert*: a row trigger on the live table waits on an advisory lock the test holds
  (`gate`); the target's backend then sits in phase `insert` with a Lock wait.
- *after the copy, before the commit*: the test locks the stream's `running` load-history row
  (`FOR UPDATE`); the target's closing UPDATE of that row waits, every batch already inserted.
- *during the commit*: a deferred constraint trigger waits on the gate, so `COMMIT` itself
  runs (and waits) on the server.
- *reading input*: the test writes part of the stream and keeps the pipe open.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2

from testkit.postgres import Db
from testkit.processes import executable
from testkit.target import Run, pipe_into_target

FAULTS_DIR = Path(__file__).parent
GOOD_RUN_STATE_ID = "dev:tap-manufacturing-to-target-warehouse-raw"  # Meltano's state id of the job
GATE_KEY = 770_077  # advisory lock key of the gate (session level, test connection)
SECRET = "Fault-Pw-" + uuid.uuid4().hex[:12]  # a password that must never be printed

# --- figures for the terminal summary --------------------------------------------------------

FIGURES: dict[str, float] = {
    "fault scenarios": 0,
    "bad inputs": 0,
    "property examples": 0,
    "rows verified": 0,
    "rows lost or corrupted": 0,
    "rows lost in known-bug cases (xfail)": 0,
    "longest reader wait (s)": 0.0,
}


def count(kind: str, amount: float = 1) -> None:
    """Add to one of the session's figures."""
    FIGURES[kind] += amount


def note_wait(seconds: float) -> None:
    """Remember the longest time a reader waited for a query during a load."""
    FIGURES["longest reader wait (s)"] = max(FIGURES["longest reader wait (s)"], seconds)


# --- the warehouse ----------------------------------------------------------------------------


def assert_same_content(
    before: dict[str, tuple[int, str]],
    after: dict[str, tuple[int, str]],
    *,
    allow: dict | None = None,
) -> None:
    """Every table holds exactly what it held (or, for tables in `allow`, that content).

    Records the rows verified and the rows lost or corrupted in the session figures.
    """
    allow = allow or {}
    lost = 0
    for table, (rows, digest) in before.items():
        count("rows verified", rows)
        acceptable = {(rows, digest)}
        if table in allow:
            acceptable.add(allow[table])
        if after.get(table) not in acceptable:
            lost += rows
    count("rows lost or corrupted", lost)
    assert set(after) == set(before), f"tables changed: {sorted(before)} -> {sorted(after)}"
    assert lost == 0, f"content changed: {before} -> {after}"


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 30) -> object:
    """Poll until `predicate()` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.03)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_backend(db: Db, stream: str, *, phase: str = "%", lock_wait: bool = False,
                     timeout: float = 30) -> int:  # fmt: skip
    """pid of the target's session for `stream` in `phase` (waiting on a lock if asked)."""

    def found() -> int | None:
        sessions = db.backends(f"target-warehouse-raw:{stream}:{phase}")
        for pid, _name, wait_type, _query, _state in sessions:
            if not lock_wait or wait_type == "Lock":
                return pid
        return None

    return int(wait_until(found, f"target session {stream}:{phase}", timeout))


class Gate:
    """An advisory lock held by a test connection; triggers installed by `install_*` wait on it."""

    def __init__(self, db: Db) -> None:
        self.conn = db.connect()
        self.conn.autocommit = True
        self.conn.cursor().execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))

    def open(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self.conn.cursor().execute("SELECT pg_advisory_unlock_all()")
            self.conn.close()
            self.conn = None


def install_gate(db: Db, table: str, *, at_commit: bool) -> None:
    """A trigger on `table` that waits for the gate: per inserted row, or at COMMIT."""
    qualified = f'"{db.schema}"."{table}"'
    kind = "CONSTRAINT TRIGGER" if at_commit else "TRIGGER"
    timing = "AFTER INSERT" if at_commit else "BEFORE INSERT"
    deferred = "DEFERRABLE INITIALLY DEFERRED" if at_commit else ""
    db.execute(
        f"""CREATE OR REPLACE FUNCTION public.fault_gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_advisory_lock({GATE_KEY});
              PERFORM pg_advisory_unlock({GATE_KEY});
              RETURN NEW;
            END $$;
            DROP TRIGGER IF EXISTS fault_gate ON {qualified};
            CREATE {kind} fault_gate {timing} ON {qualified} {deferred}
              FOR EACH ROW EXECUTE FUNCTION public.fault_gate();"""
    )


def remove_gate(db: Db, table: str) -> None:
    db.execute(f'DROP TRIGGER IF EXISTS fault_gate ON "{db.schema}"."{table}"')


class HistoryRowLock:
    """Holds the `running` load-history row of a stream FOR UPDATE (blocks the final UPDATE)."""

    def __init__(self, db: Db, stream: str) -> None:
        self.conn = db.connect()
        wait_until(
            lambda: db.query(
                f'SELECT 1 FROM "{db.schema}"._load_history '
                "WHERE stream = %s AND status = 'running'",
                (stream,),
            ),
            f"a running history row of {stream}",
        )
        with self.conn.cursor() as cursor:
            cursor.execute(
                f'SELECT id FROM "{db.schema}"._load_history '
                "WHERE stream = %s AND status = 'running' FOR UPDATE",
                (stream,),
            )

    def release(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self.conn.rollback()
            self.conn.close()
            self.conn = None


# --- the target as a process ------------------------------------------------------------------


@dataclass
class FaultWarehouse:
    """A fresh warehouse database, the target's config, and ways to run the target."""

    db: Db
    config: dict
    tmp: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def config_file(self, **extra: object) -> Path:
        path = self.tmp / f"target-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps({**self.config, **extra}))
        return path

    def start(self, **extra: object) -> subprocess.Popen:
        """Start the target; the caller writes to its stdin."""
        process = subprocess.Popen(
            [executable("target-warehouse-raw"), "--config", str(self.config_file(**extra))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.processes.append(process)
        return process

    def run(self, text: str | bytes, *, timeout: float = 180, **extra: object) -> Run:
        """Pipe Singer text into the target and wait for it."""
        return pipe_into_target(self.config_file(**extra), text, timeout=timeout)


def feed(process: subprocess.Popen, text: str) -> None:
    """Write to a running target without closing its input."""
    process.stdin.write(text.encode())
    process.stdin.flush()


def finish(process: subprocess.Popen, *, close_input: bool = True, timeout: float = 120) -> Run:
    """(Close the input and) collect a process's output."""
    if close_input and process.stdin is not None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            process.stdin.close()
        process.stdin = None
    out, err = process.communicate(timeout=timeout)
    return Run(process.returncode, out.decode(), err.decode(errors="replace"))


def assert_old_or_new(
    before: dict[str, tuple[int, str]],
    after: dict[str, tuple[int, str]],
    new: dict[str, tuple[int, str]],
    *,
    must_be_old: tuple[str, ...] = (),
) -> None:
    """Every table holds exactly its old content or exactly its new one, nothing else; the
    tables in `must_be_old` hold exactly the old one.

    This is the rule for a multi-stream run cut short: a stream whose end (ACTIVATE_VERSION)
    the target reached is committed, complete and new; the others keep their last good content.
    Records the rows verified and the rows lost or corrupted in the session figures.
    """
    lost = 0
    problems = []
    for table, old in before.items():
        count("rows verified", old[0])
        acceptable = [old] if table in must_be_old else [old, new[table]]
        if after.get(table) not in acceptable:
            lost += old[0]
            problems.append(f"{table}: old {old}, new {new[table]}, found {after.get(table)}")
    count("rows lost or corrupted", lost)
    assert set(after) == set(before), f"tables changed: {sorted(before)} -> {sorted(after)}"
    assert not problems, "; ".join(problems)
