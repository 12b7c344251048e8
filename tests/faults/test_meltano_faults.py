"""Faults around a full `meltano run tap-manufacturing target-warehouse-raw` (real meltano).

Each case: a good run (the last good content and Meltano state), a change in the sources, a
run that is held in one phase and signalled (the whole process group, as a scheduler or a
container stop does) or whose database goes away, then: every warehouse table holds exactly
its last good content, Meltano's state is unchanged, and a later run converges to the sources.
"""

from __future__ import annotations

import os
import signal
import time

import psycopg2
import pytest
from e2e_helpers import assert_warehouse_equals_sources
from faultkit import (
    Db,
    Gate,
    HistoryRowLock,
    assert_same_content,
    count,
    install_gate,
    remove_gate,
    start_meltano,
    wait_until,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.integration,
    pytest.mark.fault,
    pytest.mark.slow,
    # Not yet triaged: at the end of input the target commits streams one by one, so a run
    # held in a later stream already has the earlier streams committed (complete, new), which
    # these assertions (all tables old) do not yet allow; the source-terminated and
    # concurrent-run cases failed for reasons not yet separated from product changes in
    # progress. Until triaged these must not count as passing.
    pytest.mark.xfail(strict=False, reason="meltano fault cases not yet triaged"),
]

JOB = ("run", "tap-manufacturing", "target-warehouse-raw")
STATE_ID = "dev:tap-manufacturing-to-target-warehouse-raw"


def warehouse_db(pipeline) -> Db:
    return Db(pipeline.server.dsn(pipeline.warehouse.database))


def meltano_state(pipeline) -> str:
    done = pipeline.meltano("state", "get", STATE_ID, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def change_sources(pipeline) -> None:
    for source in ("refills", "bodies", "springs"):
        pipeline.source_sql(source, f"DELETE FROM {source}_production WHERE id % 5 = 0")


def source_sessions(pipeline, source: str) -> list[tuple]:
    return Db(pipeline.server.dsn(pipeline.sources[source].database)).query(
        "SELECT pid, wait_event_type FROM pg_stat_activity WHERE application_name = %s",
        (f"tap-manufacturing:{source}",),
    )


class SourceLock:
    """ACCESS EXCLUSIVE on a source table: the tap's read of it waits."""

    def __init__(self, pipeline, source: str) -> None:
        self.conn = psycopg2.connect(pipeline.server.dsn(pipeline.sources[source].database))
        self.conn.cursor().execute(f"LOCK TABLE {source}_production IN ACCESS EXCLUSIVE MODE")

    def open(self) -> None:
        self.conn.rollback()
        self.conn.close()


def hold(pipeline, phase: str):
    """Start the job and hold it in `phase`; returns (process, what to release)."""
    db = warehouse_db(pipeline)
    if phase == "tap-reading":
        held = SourceLock(pipeline, "springs")
        process = start_meltano(pipeline, *JOB)
        wait_until(
            lambda: any(w == "Lock" for _pid, w in source_sessions(pipeline, "springs")),
            "the tap to wait on its read of springs",
            timeout=120,
        )
        return process, held.open
    if phase == "target-copying":
        install_gate(db, "springs", at_commit=False)
        gate = Gate(db)
        process = start_meltano(pipeline, *JOB)
        wait_until(
            lambda: [
                b for b in db.backends("target-warehouse-raw:springs:insert") if b[2] == "Lock"
            ],
            "the target to insert springs",
            timeout=120,
        )
        return process, gate.open
    if phase == "before-commit":
        process = start_meltano(pipeline, *JOB)
        lock = wait_until(lambda: _try_history_lock(db), "a running history row", timeout=120)
        wait_until(
            lambda: [b for b in db.backends("target-warehouse-raw:refills:%") if b[2] == "Lock"],
            "the target to wait before its commit",
            timeout=120,
        )
        return process, lock.release
    install_gate(db, "refills", at_commit=True)
    gate = Gate(db)
    process = start_meltano(pipeline, *JOB)
    wait_until(
        lambda: [b for b in db.backends("target-warehouse-raw:refills:commit") if b[2] == "Lock"],
        "the target to commit refills",
        timeout=120,
    )
    return process, gate.open


def _try_history_lock(db: Db) -> HistoryRowLock | None:
    rows = db.query(
        "SELECT 1 FROM pg_tables WHERE schemaname = 'raw' AND tablename = '_load_history'"
    )
    if not rows or not db.query(
        "SELECT 1 FROM raw._load_history WHERE stream = 'refills' AND status = 'running'"
    ):
        return None
    return HistoryRowLock(db, "refills")


@pytest.mark.parametrize("phase", ["tap-reading", "target-copying", "before-commit", "commit"])
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_signal_to_a_meltano_run_at_each_phase(fault_pipeline, sig, phase):
    pipeline = fault_pipeline
    db = warehouse_db(pipeline)
    pipeline.meltano(*JOB)
    state = meltano_state(pipeline)
    before = db.snapshot()
    change_sources(pipeline)

    process, release = hold(pipeline, phase)
    os.killpg(process.pid, sig)
    time.sleep(0.5)
    release()
    process.communicate(timeout=120)
    count("fault scenarios")
    wait_until(lambda: not db.backends("target-warehouse-raw:%"), "target sessions to end", 60)
    for table in ("refills", "springs"):
        remove_gate(db, table)

    after = db.snapshot()
    if phase == "commit":
        # A COMMIT the server has begun completes: refills may be old or complete and new.
        new_refills = db.query("SELECT count(*) FROM raw.refills")[0][0]
        allow = {"refills": after["refills"]} if new_refills == 240 else {}
        assert_same_content(before, after, allow=allow)
    else:
        assert_same_content(before, after)
        assert meltano_state(pipeline) == state
    pipeline.meltano(*JOB)
    assert_warehouse_equals_sources(pipeline)
    statuses = {status for _s, status, _r, _e in db.history()}
    assert "running" not in statuses


def test_source_connection_terminated_mid_read(fault_pipeline):
    pipeline = fault_pipeline
    db = warehouse_db(pipeline)
    pipeline.meltano(*JOB)
    state = meltano_state(pipeline)
    before = db.snapshot()
    change_sources(pipeline)
    held = SourceLock(pipeline, "springs")
    process = start_meltano(pipeline, *JOB)
    pid = wait_until(
        lambda: next((p for p, w in source_sessions(pipeline, "springs") if w == "Lock"), None),
        "the tap to read springs",
        timeout=120,
    )
    Db(pipeline.server.dsn(pipeline.sources["springs"].database)).query(
        "SELECT pg_terminate_backend(%s)", (pid,)
    )
    held.open()
    out, err = process.communicate(timeout=120)
    count("fault scenarios")
    output = (out + err).decode(errors="replace")
    assert process.returncode != 0, output[-3000:]
    assert "springs" in output
    assert_same_content(before, db.snapshot())
    assert meltano_state(pipeline) == state
    pipeline.meltano(*JOB)
    assert_warehouse_equals_sources(pipeline)


def test_warehouse_refusing_connections_at_start(fault_pipeline):
    pipeline = fault_pipeline
    db = warehouse_db(pipeline)
    pipeline.meltano(*JOB)
    before = db.snapshot()
    change_sources(pipeline)
    pipeline.env["WAREHOUSE_PASSWORD"] = "Never-Shown-" + "x" * 6
    pipeline.env["REFILLS_PASSWORD"] = "Never-Shown-" + "y" * 6
    port = pipeline.env["WAREHOUSE_PORT"]
    pipeline.env["WAREHOUSE_PORT"] = "1"
    failed = pipeline.meltano(*JOB, check=False)
    count("fault scenarios")
    assert failed.returncode != 0
    assert "cannot connect" in failed.output
    assert "Never-Shown-" not in failed.output
    assert_same_content(before, db.snapshot())
    pipeline.env["WAREHOUSE_PORT"] = port
    pipeline.meltano(*JOB)
    assert_warehouse_equals_sources(pipeline)


def test_two_meltano_runs_of_the_same_job_at_once(fault_pipeline):
    pipeline = fault_pipeline
    pipeline.meltano(*JOB)
    change_sources(pipeline)
    first = start_meltano(pipeline, "run", "manufacturing-el")
    second = start_meltano(pipeline, "run", "manufacturing-el")
    outputs = [process.communicate(timeout=300) for process in (first, second)]
    count("fault scenarios")
    codes = sorted(process.returncode for process in (first, second))
    text = "".join((o + e).decode(errors="replace") for o, e in outputs)
    # Either both succeed (the second waited for the first) or the second refuses clearly.
    assert codes[0] == 0, text[-4000:]
    assert codes[1] == 0 or "already running" in text.lower(), text[-4000:]
    assert_warehouse_equals_sources(pipeline)
