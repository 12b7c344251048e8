"""SIGKILL and SIGTERM at every phase of a load, target alone.

Each case: a good load (the "last good content"), then a second load with different content
that is held in one phase and signalled there. Afterwards every table holds exactly its last
good content (checksums), no STATE reached stdout, no session is left behind, and a later run
converges to the new input. Only a signal *during* COMMIT may leave the new content instead:
the server finishes a COMMIT it has started, and either way the table is complete.
"""

from __future__ import annotations

import signal

import pytest

from testkit.faults import (
    Gate,
    HistoryRowLock,
    assert_same_content,
    count,
    feed,
    finish,
    install_gate,
    remove_gate,
    wait_for_backend,
    wait_until,
)
from testkit.postgres import Db
from testkit.singer import record_message, schema_message, singer, state_message

pytestmark = [pytest.mark.integration, pytest.mark.fault]

PARTS = {
    "id": {"type": "integer"},
    "qty": {"type": ["integer", "null"]},
    "name": {"type": ["string", "null"]},
    "price": {"type": ["number", "string", "null"], "x-sql-datatype": "numeric(10,2)"},
}
BINS = {"code": {"type": "string"}, "holds": {"type": ["integer", "null"]}}


def parts_text(generation: int, rows: int) -> str:
    return singer(
        schema_message("parts", PARTS, ["id"]),
        *(record_message("parts", {"id": i, "qty": i * generation, "name": f"g{generation}-{i}",
                               "price": f"{i}.{generation:02d}"}) for i in range(1, rows + 1)),
    )  # fmt: skip


def bins_text(generation: int, rows: int) -> str:
    return singer(
        schema_message("bins", BINS, ["code"]),
        *(record_message("bins", {"code": f"B{i}", "holds": i + generation}) for i in range(rows)),
    )


def full_text(generation: int) -> str:
    """Both streams, parts first, and the STATE that covers them."""
    rows = 200 if generation == 1 else 260
    return (parts_text(generation, rows) + bins_text(generation, 40 + generation)
            + singer(state_message({"generation": generation})))  # fmt: skip


def expected_snapshot(fault_warehouse, text: str) -> dict[str, tuple[int, str]]:
    """Checksums of what `text` loads, from a load into a separate reference schema."""
    done = fault_warehouse.run(text, schema="reference")
    assert done.returncode == 0, done.stderr[-2000:]
    return Db(fault_warehouse.db.dsn, "reference").snapshot()


def no_sessions_left(db: Db) -> None:
    wait_until(lambda: not db.backends("target-warehouse-raw:%"), "the target's sessions to end")


PHASES = ("reading", "insert", "before-commit", "commit")


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_signal_at_each_phase_keeps_the_last_good_content(fault_warehouse, sig, phase):
    db = fault_warehouse.db
    new = full_text(2)
    new_snapshot = expected_snapshot(fault_warehouse, new)
    first = fault_warehouse.run(full_text(1))
    assert first.returncode == 0, first.stderr[-2000:]
    before = db.snapshot()
    assert before["parts"][0] == 200

    gate = lock = None
    process = fault_warehouse.start(batch_size_rows=50)
    if phase == "reading":
        # 120 of 260 records sent, input still open: two batches are inserted, the third waits.
        feed(process, "".join(new.splitlines(keepends=True)[:121]))
        wait_until(
            lambda: [b for b in db.backends("target-warehouse-raw:parts:%")
                     if b[4] == "idle in transaction" and b[1].endswith((":copy", ":insert"))],
            "the target to wait for more input mid-stream",
        )  # fmt: skip
    elif phase == "insert":
        install_gate(db, "parts", at_commit=False)
        gate = Gate(db)
        feed(process, new)
        wait_for_backend(db, "parts", phase="insert", lock_wait=True)
    elif phase == "before-commit":
        body = new.splitlines(keepends=True)
        feed(process, "".join(body[:-1]))  # all but the STATE line: the load is open
        lock = HistoryRowLock(db, "parts")
        feed(process, body[-1])
        process.stdin.close()
        wait_for_backend(db, "parts", phase="%", lock_wait=True)  # the history UPDATE waits
    else:
        install_gate(db, "parts", at_commit=True)
        gate = Gate(db)
        feed(process, new)
        process.stdin.close()
        wait_for_backend(db, "parts", phase="commit", lock_wait=True)

    process.send_signal(sig)
    if sig == signal.SIGKILL:
        process.wait(timeout=30)
    for held in (gate, lock):
        if held is not None:
            (held.open if isinstance(held, Gate) else held.release)()
    # The process exits on the signal alone; its input is closed only afterwards, so an
    # end of input can never be mistaken for the end of the stream.
    process.wait(timeout=60)
    done = finish(process)
    count("fault scenarios")
    assert done.returncode == (-9 if sig == signal.SIGKILL else 143), done.stderr[-2000:]
    no_sessions_left(db)
    remove_gate(db, "parts")

    after = db.snapshot()
    if phase == "commit":
        # The server completes a COMMIT it has begun; parts is then complete and new.
        assert_same_content(before, after, allow={"parts": new_snapshot["parts"]})
    else:
        assert_same_content(before, after)
        assert done.stdout == "", "no STATE may be written for an interrupted load"
    if done.stdout:
        assert after["parts"] == new_snapshot["parts"]
        assert after["bins"] == new_snapshot["bins"]
    if sig == signal.SIGTERM:
        assert "SIGTERM" in done.stderr
    assert "Traceback" not in done.stderr

    # A later run cleans up and converges to the new input.
    again = fault_warehouse.run(new)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.states == [{"generation": 2}]
    assert db.snapshot() == new_snapshot
    statuses = [status for _stream, status, _rows, _error in db.history()]
    assert "running" not in statuses
    assert statuses[-2:] == ["replaced", "replaced"]
    assert db.query("SELECT count(*) FROM pg_class WHERE relpersistence = 't'") == [(0,)]
