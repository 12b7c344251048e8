"""LOG_BASED replication under faults: a killed tap, a source that keeps writing."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest

from testkit.cdc import STREAM, TABLE, apply, bookmark, full_table, run_tap
from testkit.tap import PRODUCTION_ROWS, TAP_EXECUTABLE, TapRun

pytestmark = [pytest.mark.integration, pytest.mark.fault, pytest.mark.slow]


def _many_transactions(source, transactions: int, rows: int) -> None:
    """`transactions` commits, each inserting `rows` rows, updating and deleting some."""
    for number in range(transactions):
        start = 1000 + number * rows
        source.sql(
            PRODUCTION_ROWS.format(table=TABLE, start=start, stop=start + rows - 1),
            f"UPDATE {TABLE} SET quantity = {number} WHERE id BETWEEN {start} AND {start + 9}",
            f"DELETE FROM {TABLE} WHERE id BETWEEN {start + 10} AND {start + 14}",
        )


@pytest.mark.parametrize("kill_after_records", [1, 2_500, 9_000])
def test_sigkill_mid_run_then_rerun_from_the_last_state_loses_nothing(
    cdc_source, tmp_path, kill_after_records
):
    first = run_tap(tmp_path, cdc_source.config())
    _many_transactions(cdc_source, transactions=60, rows=200)  # 60 x 215 = 12,900 changes
    config = cdc_source.config(fetch_size=100, state_interval=300)
    config_path = tmp_path / "killed.json"
    config_path.write_text(json.dumps(config))
    state_path = tmp_path / "state.json"
    state_path.write_text(json.dumps(first.final_state))
    process = subprocess.Popen(
        [TAP_EXECUTABLE, "--config", str(config_path), "--state", str(state_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    lines = []
    records = 0
    for line in process.stdout:
        lines.append(line)
        records += line.startswith(b'{"type":"RECORD"')
        if records >= kill_after_records:
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed = TapRun(process.returncode, b"".join(lines).decode(), "")
    assert process.returncode == -signal.SIGKILL
    # What Meltano would have stored: the last STATE the tap wrote (else the first run's).
    state = killed.final_state if killed.of_type("STATE") else first.final_state
    if kill_after_records == 9_000:
        assert bookmark(state) > bookmark(first.final_state)
    rerun = run_tap(tmp_path, config, state=state)
    # The target has applied whatever the killed run wrote (or not; re-sent changes are
    # harmless): either way the result equals the source.
    reference = full_table(tmp_path, cdc_source)
    assert len(reference) == 20 + 60 * 195
    before = apply({}, first.messages)
    # The target committed exactly what the stored STATE covers ...
    states = [i for i, m in enumerate(killed.messages) if m["type"] == "STATE"]
    covered = killed.messages[: states[-1] + 1] if states else []
    assert apply(apply(before, covered), rerun.messages) == reference
    # ... or everything the killed tap wrote: re-sent changes are harmless.
    assert apply(apply(before, killed.messages), rerun.messages) == reference
    # Nothing is repeated beyond the stored bookmark: the rerun starts at it.
    assert min(r["_sdc_lsn"] for r in rerun.records(STREAM)) >= bookmark(state)
    # And a run from the rerun's final state has nothing left to send.
    assert run_tap(tmp_path, config, state=rerun.final_state).records(STREAM) == []


def test_run_ends_while_the_source_keeps_writing(cdc_source, tmp_path):
    first = run_tap(tmp_path, cdc_source.config())
    stop = threading.Event()
    written = []

    def writer() -> None:
        number = 0
        while not stop.is_set():
            start = 100_000 + number * 10
            cdc_source.sql(PRODUCTION_ROWS.format(table=TABLE, start=start, stop=start + 9))
            written.append(number)
            number += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        started = time.monotonic()
        run = run_tap(tmp_path, cdc_source.config(), state=first.final_state, timeout=60)
        seconds = time.monotonic() - started
    finally:
        stop.set()
        thread.join(timeout=30)
    assert seconds < 30
    assert run.records(STREAM)
    assert len(written) > len(run.records(STREAM)) // 10  # the writer went on after the run
    rest = run_tap(tmp_path, cdc_source.config(), state=run.final_state)
    reference = full_table(tmp_path, cdc_source)
    assert apply(apply(apply({}, first.messages), run.messages), rest.messages) == reference
