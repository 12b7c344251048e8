"""Readers and loads at the same time as a transactional replace.

- A reader polling from a second connection during a replace (target alone, 200,000 rows; and
  during a full `meltano run`) only ever sees the complete old or the complete new content
  (count and cheap checksums per poll), and is never blocked: each poll's wall time is
  recorded and the longest one is reported in the figures ("longest reader wait").
- Two loads of the same stream started at once do not interleave: the second waits on the
  table's advisory lock; the final content is exactly one of the two inputs (the later commit
  wins); the load history shows both, one after the other.
- A reader holding a long REPEATABLE READ transaction sees the old table throughout and does
  not block the load's commit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from testkit.faults import Gate, count, finish, install_gate, note_wait, remove_gate, wait_until
from testkit.postgres import Db
from testkit.singer import record_message, schema_message, singer

pytestmark = [pytest.mark.integration, pytest.mark.fault]

ITEMS = {
    "id": {"type": "integer"},
    "a": {"type": ["integer", "null"]},
    "b": {"type": ["string", "null"]},
}
# count, sum of ids and a sum of every row's hash: cheap, and any partial table differs.
POLL = (
    "SELECT count(*), coalesce(sum(id), 0), coalesce(sum(hashtext(t::text)::bigint), 0) "
    "FROM raw.{table} t"
)
# A load never makes a reader wait; this bound only keeps a regression from hanging the test
# (a poll is one aggregate over at most a few hundred thousand rows).
MAX_READER_WAIT = 2.0
STREAMS = ("bodies", "refills", "springs")  # the tables of a `meltano run`


def items_text(generation: int, rows: int, *, first_id: int = 1) -> str:
    """One `items` stream: ids first_id.., values that differ per generation."""
    return singer(
        schema_message("items", ITEMS, ["id"]),
        *(
            record_message("items", {"id": i, "a": i * generation, "b": f"g{generation}-{i}"})
            for i in range(first_id, first_id + rows)
        ),
    )


def expected_ids(rows: int, first_id: int = 1) -> tuple[int, int]:
    """(count, sum of ids) of an `items_text` input."""
    return rows, sum(range(first_id, first_id + rows))


@dataclass
class Poller:
    """Polls `POLL` for some tables from its own connection until stopped."""

    db: Db
    tables: tuple[str, ...]
    seen: list[tuple[str, tuple]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.conn = self.db.connect()
        self.conn.autocommit = True  # every poll its own snapshot
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.conn.cursor() as cursor:
            while not self.stop.is_set():
                for table in self.tables:
                    started = time.monotonic()
                    cursor.execute(POLL.format(table=table))
                    self.waits.append(time.monotonic() - started)
                    self.seen.append((table, tuple(int(v) for v in cursor.fetchone())))
                time.sleep(0.005)

    def __enter__(self) -> Poller:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        self.conn.close()

    def longest_wait(self) -> float:
        longest = max(self.waits)
        note_wait(longest)
        return longest


def start_with_input(fault_warehouse, text: str):
    """Start the target and write `text` to it from a thread (then close its input)."""
    process = fault_warehouse.start()

    def write() -> None:
        try:
            process.stdin.write(text.encode())
            process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return process, writer


def finished(process, writer):
    writer.join(timeout=300)
    process.stdin = None  # closed by the writer
    return finish(process, close_input=False, timeout=300)


def poll_now(db: Db, table: str) -> tuple:
    return tuple(int(v) for v in db.query(POLL.format(table=table))[0])


def check_polls(poller: Poller, acceptable: dict[str, set[tuple]], rows: int) -> None:
    """Every poll saw one acceptable state; count rows verified and lost in the figures."""
    bad = [(table, seen) for table, seen in poller.seen if seen not in acceptable[table]]
    count("rows verified", rows)
    count("rows lost or corrupted", rows if bad else 0)
    assert not bad, f"a reader saw a partial table: {bad[:5]} (acceptable: {acceptable})"


@pytest.mark.slow
def test_a_polling_reader_sees_only_old_or_new_and_never_waits(fault_warehouse):
    db = fault_warehouse.db
    rows = 200_000
    done = fault_warehouse.run(items_text(1, rows))
    assert done.returncode == 0, done.stderr[-2000:]
    old = poll_now(db, "items")
    assert old[:2] == expected_ids(rows)

    with Poller(db, ("items",)) as poller:
        process, writer = start_with_input(fault_warehouse, items_text(2, rows, first_id=50_001))
        done = finished(process, writer)
        time.sleep(0.1)  # a few polls after the commit
    count("fault scenarios")
    assert done.returncode == 0, done.stderr[-2000:]
    new = poll_now(db, "items")  # overlapping and new ids, new values
    assert new[:2] == expected_ids(rows, 50_001)
    check_polls(poller, {"items": {old, new}}, rows)
    seen = [state for _table, state in poller.seen]
    assert seen[0] == old
    assert seen[-1] == new
    assert seen.count(old) > 5, "the reader did not poll during the load"
    longest = poller.longest_wait()
    assert longest < MAX_READER_WAIT, f"a reader waited {longest:.3f} s"


def test_two_loads_of_the_same_stream_do_not_interleave(fault_warehouse):
    db = fault_warehouse.db
    rows = 3000
    inputs = {"A": items_text(3, rows), "B": items_text(4, rows + 7, first_id=101)}
    references = {}
    for name, text in inputs.items():
        done = fault_warehouse.run(text, schema=f"ref_{name.lower()}")
        assert done.returncode == 0, done.stderr[-2000:]
        references[name] = Db(db.dsn, f"ref_{name.lower()}").checksum("items")
    done = fault_warehouse.run(items_text(1, 500))
    assert done.returncode == 0, done.stderr[-2000:]
    old = db.checksum("items")

    # Whichever load takes the table's lock first is held inside its COMMIT (a deferred
    # trigger waits on the gate), so the other one certainly finds the lock taken.
    install_gate(db, "items", at_commit=True)
    gate = Gate(db)
    started = {name: start_with_input(fault_warehouse, text) for name, text in inputs.items()}
    wait_until(lambda: db.backends("target-warehouse-raw:items:commit"), "one load to commit")
    wait_until(lambda: db.backends("target-warehouse-raw:items:wait-lock"), "the other to wait")
    assert db.checksum("items") == old  # neither is visible yet
    gate.open()
    results = {name: finished(*pair) for name, pair in started.items()}
    count("fault scenarios")
    remove_gate(db, "items")
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
    waited = [name for name, r in results.items() if "waiting for it to finish" in r.stderr]
    assert len(waited) == 1, {name: r.stderr[-1500:] for name, r in results.items()}

    final = db.checksum("items")
    count("rows verified", final[0])
    if final != references[waited[0]]:  # the later commit wins: the one that waited
        count("rows lost or corrupted", final[0])
    assert final == references[waited[0]], (final, references)
    loads = db.query(
        "SELECT status, rows, started_at, finished_at FROM raw._load_history "
        "WHERE table_name = 'items' ORDER BY id"
    )
    assert [status for status, *_ in loads] == ["replaced"] * 3  # the first load, then A and B
    first, second = loads[-2], loads[-1]
    assert sorted([first[1], second[1]]) == [rows, rows + 7]
    assert second[2] >= first[3], f"the two loads overlap: {loads[-2:]}"


def test_a_long_repeatable_read_reader_sees_the_old_table_and_does_not_block(fault_warehouse):
    db = fault_warehouse.db
    rows = 20_000
    done = fault_warehouse.run(items_text(1, rows))
    assert done.returncode == 0, done.stderr[-2000:]
    old = poll_now(db, "items")

    reader = db.connect()
    reader.set_session(isolation_level="REPEATABLE READ")
    try:
        with reader.cursor() as cursor:
            cursor.execute(POLL.format(table="items"))  # the reader's snapshot starts here
            assert tuple(int(v) for v in cursor.fetchone()) == old
            started = time.monotonic()
            done = fault_warehouse.run(items_text(5, rows + 11), timeout=120)
            load_seconds = time.monotonic() - started
            assert done.returncode == 0, done.stderr[-2000:]
            # The load committed while the reader's transaction is still open ...
            new = poll_now(db, "items")
            assert new[:2] == expected_ids(rows + 11)
            assert new != old
            # ... and the reader still sees the old table, completely.
            cursor.execute(POLL.format(table="items"))
            assert tuple(int(v) for v in cursor.fetchone()) == old
        reader.commit()
        with reader.cursor() as cursor:
            cursor.execute(POLL.format(table="items"))
            assert tuple(int(v) for v in cursor.fetchone()) == new
    finally:
        reader.close()
    count("fault scenarios")
    count("rows verified", rows)
    history = db.query(
        "SELECT status, seconds FROM raw._load_history WHERE table_name = 'items' ORDER BY id"
    )
    assert history[-1][0] == "replaced"
    assert load_seconds < 60, load_seconds


@pytest.mark.e2e
@pytest.mark.slow
def test_a_polling_reader_during_a_meltano_run(good_pipeline):
    pipeline = good_pipeline
    db = Db(pipeline.server.dsn(pipeline.warehouse.database))
    old = {table: poll_now(db, table) for table in STREAMS}
    for source in STREAMS:
        pipeline.source_sql(source, f"DELETE FROM {source}_production WHERE id % 5 = 0")
    with Poller(db, STREAMS) as poller:
        pipeline.meltano("run", "tap-manufacturing", "target-warehouse-raw")
        time.sleep(0.1)
    count("fault scenarios")
    new = {table: poll_now(db, table) for table in STREAMS}
    assert all(old[t] != new[t] for t in STREAMS)
    check_polls(poller, {t: {old[t], new[t]} for t in STREAMS}, sum(n[0] for n in old.values()))
    longest = poller.longest_wait()
    assert longest < MAX_READER_WAIT, f"a reader waited {longest:.3f} s"
