"""Faults around a full `meltano run tap-manufacturing target-warehouse-raw` (real meltano).

Each case starts from a good run (a clone of `good_run_template`: the last good content, and
Meltano's state cleared so that any bookmark found afterwards was written by the run under
test), changes the sources (every fifth row deleted), then starts a run that is held in one
phase of the `refills` stream and signalled (the whole process group, as a scheduler or a
container stop does) or whose database goes away.

What must hold afterwards. Our tap reads its FULL_TABLE streams one after the other, in
catalog order (`bodies`, `refills`, `springs`), and ends each with ACTIVATE_VERSION, at which
the target commits that stream. So a run cut short in `refills` may already have committed
`bodies`, complete and new; that is correct. The rule per table: exactly its old content or
exactly its new (source) content, nothing else; the interrupted stream's table exactly the
old (except a signal *during* its COMMIT: the server finishes a COMMIT it has begun, and the
table is complete either way); Meltano's state holds a bookmark only for streams whose new
content is committed, never for the interrupted one; a later run converges every table to
its source and leaves no `running` history row.
"""

from __future__ import annotations

import json
import os
import signal
import time

import psycopg2
import pytest

from testkit.faults import (
    GOOD_RUN_STATE_ID,
    Gate,
    HistoryRowLock,
    assert_old_or_new,
    count,
    install_gate,
    remove_gate,
    wait_until,
)
from testkit.pipeline import assert_warehouse_equals_sources, start_meltano
from testkit.postgres import Db

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]

JOB = ("run", "tap-manufacturing", "target-warehouse-raw")
STREAMS = ("bodies", "refills", "springs")  # catalog order, the order the tap reads them
HELD = "refills"  # the stream a run is held in: one stream before it, one after


def warehouse_db(pipeline) -> Db:
    return Db(pipeline.server.dsn(pipeline.warehouse.database))


def source_db(pipeline, source: str) -> Db:
    return Db(pipeline.server.dsn(pipeline.sources[source].database), "public")


def source_checksums(pipeline) -> dict[str, tuple[int, str]]:
    """What each warehouse table holds once it has the source's current content."""
    return {s: source_db(pipeline, s).checksum(f"{s}_production") for s in STREAMS}


def saved_bookmarks(pipeline) -> dict:
    """The bookmarks in Meltano's saved state of the job ({} when there is none)."""
    done = pipeline.meltano("state", "get", GOOD_RUN_STATE_ID, check=False)
    text = done.stdout.strip()
    if done.returncode != 0 or not text.startswith("{"):
        return {}
    return json.loads(text).get("singer_state", {}).get("bookmarks", {})


def change_sources(pipeline) -> None:
    """A fifth of the rows gone, a tenth changed: the next replace writes changed rows only
    (see the target's `overwrite`), inserting into and deleting from the live table."""
    for source in STREAMS:
        pipeline.source_sql(source, f"DELETE FROM {source}_production WHERE id % 5 = 0")
        pipeline.source_sql(
            source, f"UPDATE {source}_production SET shift = shift || '*' WHERE id % 10 = 1"
        )


def source_sessions(pipeline, source: str) -> list[tuple]:
    return source_db(pipeline, source).query(
        "SELECT pid, wait_event_type FROM pg_stat_activity WHERE application_name = %s",
        (f"tap-manufacturing:{source}",),
    )


def target_inserts(db: Db) -> bool:
    """The held stream's rows are going into the live table, and wait: COPY (phase `insert`)
    or, in a replace that writes changed rows only, its INSERT before the commit (`changes`)."""
    return target_waits(db, "insert") or target_waits(db, "changes")


def target_waits(db: Db, phase: str, query_start: str = "") -> bool:
    """The target's session of the held stream waits on a lock in `phase`."""
    return any(
        wait == "Lock" and query.lstrip().upper().startswith(query_start)
        for _pid, _name, wait, query, _state in db.backends(f"target-warehouse-raw:{HELD}:{phase}")
    )


class SourceLock:
    """ACCESS EXCLUSIVE on a source table: the tap's read of it waits."""

    def __init__(self, pipeline, source: str) -> None:
        self.conn = psycopg2.connect(pipeline.server.dsn(pipeline.sources[source].database))
        self.conn.cursor().execute(f"LOCK TABLE {source}_production IN ACCESS EXCLUSIVE MODE")

    def open(self) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


def hold(pipeline, phase: str):
    """Start the job and hold it in `phase` of the `refills` stream: (process, release)."""
    db = warehouse_db(pipeline)
    if phase == "tap-reading":
        held = SourceLock(pipeline, HELD)
        process = start_meltano(pipeline, *JOB)
        wait_until(
            lambda: any(w == "Lock" for _pid, w in source_sessions(pipeline, HELD)),
            f"the tap to wait on its read of {HELD}",
            timeout=120,
        )
        return process, held.open
    if phase == "target-copying":
        install_gate(db, HELD, at_commit=False)
        gate = Gate(db)
        process = start_meltano(pipeline, *JOB)
        wait_until(lambda: target_inserts(db), "the target to insert", timeout=120)
        return process, gate.open
    if phase == "before-commit":
        # Held in the insert first (the running history row exists then), the history row is
        # locked, the insert let go: the target's closing UPDATE of that row, the last
        # statement before COMMIT with every row inserted, waits.
        install_gate(db, HELD, at_commit=False)
        gate = Gate(db)
        process = start_meltano(pipeline, *JOB)
        wait_until(lambda: target_inserts(db), "the target to insert", timeout=120)
        lock = HistoryRowLock(db, HELD)
        gate.open()
        wait_until(lambda: target_waits(db, "%", "UPDATE"), "the closing UPDATE", timeout=60)
        return process, lock.release
    assert phase == "commit"
    install_gate(db, HELD, at_commit=True)
    gate = Gate(db)
    process = start_meltano(pipeline, *JOB)
    wait_until(lambda: target_waits(db, "commit"), "the target to commit", timeout=120)
    return process, gate.open


def check_cut_short_run(pipeline, before, *, held_may_be_new: bool = False) -> None:
    """Old-or-new per table, the held stream old, bookmarks only for committed streams."""
    db = warehouse_db(pipeline)
    wait_until(lambda: not db.backends("target-warehouse-raw:%"), "target sessions to end", 60)
    new = source_checksums(pipeline)
    after = db.snapshot()
    assert_old_or_new(before, after, new, must_be_old=() if held_may_be_new else (HELD,))
    bookmarks = saved_bookmarks(pipeline)
    for stream in bookmarks:
        assert after[stream] == new[stream], f"bookmark of {stream} saved, its load not committed"
    if not held_may_be_new:
        assert HELD not in bookmarks, bookmarks


def check_converges(pipeline, *, meltano_killed: bool = False) -> None:
    """A later run converges every table to its source; no history row stays `running`.

    After a SIGKILL Meltano's own record of the killed run says `running` (nothing could
    close it), and Meltano refuses to start the same job until that record is stale (about
    five minutes; the refusal is checked in `test_two_meltano_runs_of_the_same_job_at_once`)
    unless told `--force`: that is what an operator does, and what we do.
    """
    db = warehouse_db(pipeline)
    pipeline.meltano(*JOB, *(["--force"] if meltano_killed else []))
    assert_warehouse_equals_sources(pipeline)
    assert db.snapshot() == source_checksums(pipeline)
    statuses = [status for _s, status, _r, _e in db.history()]
    assert "running" not in statuses, statuses


@pytest.mark.parametrize("phase", ["tap-reading", "target-copying", "before-commit", "commit"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_signal_to_a_meltano_run_at_each_phase(good_pipeline, sig, phase):
    pipeline = good_pipeline
    db = warehouse_db(pipeline)
    before = db.snapshot()
    assert before == source_checksums(pipeline)  # the good run landed the sources exactly
    change_sources(pipeline)

    process, release = hold(pipeline, phase)
    os.killpg(process.pid, sig)
    time.sleep(0.5)
    release()
    process.communicate(timeout=120)
    count("fault scenarios")
    assert process.returncode != 0
    remove_gate(db, HELD)

    check_cut_short_run(pipeline, before, held_may_be_new=phase == "commit")
    check_converges(pipeline, meltano_killed=sig == signal.SIGKILL)


def test_source_connection_terminated_mid_read(good_pipeline):
    pipeline = good_pipeline
    db = warehouse_db(pipeline)
    before = db.snapshot()
    change_sources(pipeline)
    held = SourceLock(pipeline, HELD)
    process = start_meltano(pipeline, *JOB)
    pid = wait_until(
        lambda: next((p for p, w in source_sessions(pipeline, HELD) if w == "Lock"), None),
        f"the tap to read {HELD}",
        timeout=120,
    )
    source_db(pipeline, HELD).query("SELECT pg_terminate_backend(%s)", (pid,))
    held.open()
    out, err = process.communicate(timeout=120)
    count("fault scenarios")
    output = (out + err).decode(errors="replace")
    assert process.returncode != 0, output[-3000:]
    assert HELD in output
    check_cut_short_run(pipeline, before)
    check_converges(pipeline)


def test_warehouse_refusing_connections_at_start(good_pipeline):
    pipeline = good_pipeline
    db = warehouse_db(pipeline)
    before = db.snapshot()
    change_sources(pipeline)
    pipeline.env["WAREHOUSE_PASSWORD"] = "Never-Shown-" + "x" * 6
    pipeline.env["REFILLS_PASSWORD"] = "Never-Shown-" + "y" * 6
    port = pipeline.env["WAREHOUSE_PORT"]
    pipeline.env["WAREHOUSE_PORT"] = "1"  # nothing listens there: connection refused
    failed = pipeline.meltano(*JOB, check=False)
    count("fault scenarios")
    assert failed.returncode != 0
    assert "cannot connect" in failed.output, failed.output[-3000:]
    assert "Never-Shown-" not in failed.output
    # Nothing reached the warehouse, so every table is old, and no bookmark was saved.
    assert_old_or_new(before, db.snapshot(), source_checksums(pipeline), must_be_old=STREAMS)
    assert saved_bookmarks(pipeline) == {}
    pipeline.env["WAREHOUSE_PORT"] = port
    del pipeline.env["WAREHOUSE_PASSWORD"], pipeline.env["REFILLS_PASSWORD"]
    check_converges(pipeline)


def test_two_meltano_runs_of_the_same_job_at_once(good_pipeline):
    """A second run of the job refuses (Meltano); forced, it waits on the table's lock.

    The main command, not `manufacturing-el`: that job's three extractors each start (and
    run discovery) after the previous task, so two forced runs of it would discover the same
    extractor at the same moment, and Meltano keeps one catalog file per extractor and
    machine (the README warns against forcing a second run of a running job).
    """
    pipeline = good_pipeline
    db = warehouse_db(pipeline)
    change_sources(pipeline)
    # The first run is held inside its COMMIT of refills, holding that table's lock.
    install_gate(db, HELD, at_commit=True)
    gate = Gate(db)
    first = start_meltano(pipeline, *JOB)
    wait_until(lambda: target_waits(db, "commit"), "the first run to commit", timeout=120)
    # The same job again: Meltano refuses it, clearly, and it touches nothing.
    refused = pipeline.meltano(*JOB, check=False)
    assert refused.returncode != 0
    assert "is already running" in refused.output, refused.output[-3000:]
    # Forced past Meltano's check, it reaches refills and waits for the first run's lock.
    forced = start_meltano(pipeline, "run", "--force", *JOB[1:])
    wait_until(
        lambda: db.backends(f"target-warehouse-raw:{HELD}:wait-lock"),
        "the forced run to wait for the first",
        timeout=120,
    )
    gate.open()
    outputs = [process.communicate(timeout=300) for process in (first, forced)]
    count("fault scenarios")
    text = "".join((o + e).decode(errors="replace") for o, e in outputs)
    assert [first.returncode, forced.returncode] == [0, 0], text[-4000:]
    assert "waiting for it to finish" in text, text[-4000:]
    remove_gate(db, HELD)
    assert_warehouse_equals_sources(pipeline)
    # The good run's load and one per run since, each table's loads one after the other.
    rows = db.query(
        "SELECT table_name, status, started_at, finished_at FROM raw._load_history ORDER BY id"
    )
    for table in STREAMS:
        loads = [r for r in rows if r[0] == table]
        assert [r[1] for r in loads] == ["replaced"] * 3, loads
        assert loads[2][2] >= loads[1][3], f"loads of {table} overlap: {loads}"
    assert set(saved_bookmarks(pipeline)) == set(STREAMS)
